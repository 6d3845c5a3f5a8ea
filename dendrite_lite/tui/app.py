"""`dendrite-lite tui`: the Textual application shell.

- SCREENS is the registry: the key that shows a screen, its footer label, and its class (which
  takes the AdminClient). Each screen is a Textual mode, so switching keeps what a screen had
  open (a dialog, a details screen) for when its key is pressed again.
- The app polls GET /_dendrite_lite/admin/v1/status every POLL_S seconds. The answer goes
  down to the dashboard (`DashboardScreen.status`); no answer covers the screens with the
  "not running" screen, and the next answer takes it away. A screen whose own request finds
  no server may post `ServerUnavailable` to show it at once.
- Colours: the "ansi-dark" theme paints with the terminal's own 16 ANSI colours, so an 80x24
  terminal over SSH with a 16-colour palette shows the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from dendrite_lite.tui.admin_client import (
    AdminClient,
    AdminRequestError,
    AdminUnavailable,
)
from dendrite_lite.tui.messages import ServerUnavailable
from dendrite_lite.tui.screens.dashboard import STATUS_PATH, DashboardScreen
from dendrite_lite.tui.screens.federation import FederationScreen
from dendrite_lite.tui.screens.logs import LogsScreen
from dendrite_lite.tui.screens.not_running import NotRunningScreen
from dendrite_lite.tui.screens.reports import ReportsScreen
from dendrite_lite.tui.screens.rooms import RoomsScreen
from dendrite_lite.tui.screens.users import UsersScreen

__all__ = ["POLL_S", "SCREENS", "DendriteLiteApp"]

POLL_S = 2.0

# key -> (footer label, screen class taking the AdminClient), in footer order. The first is
# shown at start. Add a screen with one line.
SCREENS: dict[str, tuple[str, Callable[[AdminClient], Screen[Any]]]] = {
    "d": ("Dashboard", DashboardScreen),
    "l": ("Logs", LogsScreen),
    "u": ("Users", UsersScreen),
    "r": ("Rooms", RoomsScreen),
    "f": ("Federation", FederationScreen),
    "p": ("Reports", ReportsScreen),
}


class DendriteLiteApp(App[None]):
    TITLE = "dendrite-lite"
    # Every key is in the footer; a palette behind ctrl+p would be one that is not.
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"show('{label.lower()}')", label) for key, (label, _) in SCREENS.items()),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: AdminClient, *, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.client = client
        self.poll_s = poll_s
        self._down: NotRunningScreen | None = None
        self._refused = ""  # the status request's last error, notified once
        self._made: list[Screen[Any]] = []  # the modes' screens, once shown
        for label, screen in SCREENS.values():
            self.add_mode(label.lower(), lambda screen=screen: self._make(screen))

    def _make(self, screen: Callable[[AdminClient], Screen[Any]]) -> Screen[Any]:
        made = screen(self.client)
        self._made.append(made)
        return made

    def on_mount(self) -> None:
        self.theme = "ansi-dark"
        first_label = next(iter(SCREENS.values()))[0]
        self.switch_mode(first_label.lower())
        self.poll_status()
        self.set_interval(self.poll_s, self.poll_status)

    async def action_show(self, mode: str) -> None:
        if self._down is not None:
            self.bell()  # nothing to show until the server answers
            return
        if mode != self.current_mode:
            await self.switch_mode(mode)

    @work(exclusive=True, group="status")
    async def poll_status(self) -> None:
        try:
            status = await self.client.get(STATUS_PATH)
        except AdminUnavailable as e:
            self._show_down(e.reason)
            return
        except AdminRequestError as e:
            if str(e) != self._refused:  # once, not every poll
                self.notify(f"{e.errcode}: {e.error}", title="Status", severity="error")
            self._refused = str(e)
            return
        self._refused = ""
        if self._down is not None:
            self._down.dismiss()
            self._down = None
        for screen in self._made:
            if isinstance(screen, DashboardScreen):
                screen.status = status

    @on(ServerUnavailable)
    def _server_unavailable(self) -> None:
        self._show_down("no answer")

    def _show_down(self, reason: str) -> None:
        if self._down is not None:
            self._down.update_reason(self.client.socket_path, self.poll_s, reason)
            return
        self._down = NotRunningScreen(self.client.socket_path, self.poll_s, reason)
        self.push_screen(self._down)

    async def on_unmount(self) -> None:
        await self.client.aclose()
