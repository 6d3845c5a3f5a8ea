"""What the TUI shows while no server answers on the admin socket: why, and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Middle
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

__all__ = ["NotRunningScreen", "not_running_text"]


def not_running_text(socket_path: Path, retry_s: float, reason: str) -> str:
    return (
        "The server is not running.\n\n"
        f"No answer on its admin socket ({reason}):\n{socket_path}\n\n"
        "Start it with `dendrite-lite run`\n"
        "(or `systemctl start dendrite-lite`).\n\n"
        f"Retrying every {retry_s:g} s."
    )


class NotRunningScreen(ModalScreen[None]):
    """Covers every screen until the app's status poll gets an answer again (it dismisses
    this screen then); only q works meanwhile."""

    DEFAULT_CSS = """
    NotRunningScreen { align: center middle; background: $background; }
    NotRunningScreen #why {
        width: 76; height: auto; padding: 1 2; border: heavy $error; color: $text;
        text-align: center;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "app.quit", "Quit")]

    def __init__(self, socket_path: Path, retry_s: float, reason: str) -> None:
        super().__init__()
        self._text = not_running_text(socket_path, retry_s, reason)

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(self._text, id="why", markup=False)
        yield Footer()

    def update_reason(self, socket_path: Path, retry_s: float, reason: str) -> None:
        self._text = not_running_text(socket_path, retry_s, reason)
        self.query_one("#why", Static).update(self._text)
