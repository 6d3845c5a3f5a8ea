"""The Users, Rooms, Federation and Reports screens as a person sees them: `dendrite-lite tui`
in an 80x24 tmux pane (a terminal that claims true colour) against a real server. Each screen
must fit, show every one of its keys in the footer, and paint with the 16 ANSI colours only,
dialogs and details screens included."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register
from tests.tui.test_tmux_smoke import _WIDE_COLOUR, _capture, _tmux, _until_shown, tmux

__all__ = ["tmux"]  # the fixture, imported for the tests here

V3 = "/_matrix/client/v3"

# key -> (heading, the footer labels of the screen's own keys)
SCREENS = {
    "u": (
        "Users (",
        [
            "/ Search",
            "^r Reload",
            "n New",
            "x Deactivate",
            "w Password",
            "a Admin",
            "v Devices",
        ],
    ),
    "r": ("Rooms (", ["⏎ Details", "/ Search", "^r Reload", "b Block", "D Delete"]),
    "f": (
        "Federation destinations (",
        ["⏎ Details", "/ Search", "^r Reload", "R Reset", "c Doctor"],
    ),
    "p": ("Event reports (", ["⏎ Details", "/ Search", "^r Reload", "x Dismiss"]),
}
APP_KEYS = [
    "d Dashboard",
    "l Logs",
    "u Users",
    "r Rooms",
    "f Federation",
    "p Reports",
    "q Quit",
]


async def _shown_in_16_colours(tmux: tuple[str, str], text: str) -> list[str]:
    """The pane's lines once `text` is on it, checked for size and colours."""
    screen = await _until_shown(tmux, text)
    lines = screen.rstrip("\n").split("\n")
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen
    assert not _WIDE_COLOUR.search(await _capture(tmux, colours=True)), screen
    return lines


async def test_admin_screens_in_an_80x24_tmux_pane(
    tui_server: RunningServer, tmux: tuple[str, str], tmp_path: Path
) -> None:
    owner = await register(tui_server.client, "tmux_admin_screens")
    created = await tui_server.client.post(
        f"{V3}/createRoom",
        json={"name": "tmux room"},
        headers=auth_header(owner["access_token"]),
    )
    assert created.status_code == 200
    config = tmp_path / "dendrite-lite.toml"
    config.write_text(
        f'[server]\nserver_name = "{tui_server.config.server.server_name}"\n'
        f'data_dir = "{tui_server.config.server.data_dir}"\n'
    )
    command = f"env TERM=xterm-256color COLORTERM=truecolor {sys.executable} -m dendrite_lite tui --config {config}"
    await _tmux(
        *tmux,
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "80",
        "-y",
        "24",
        "-e",
        f"PATH={os.environ.get('PATH', '')}",
        command,
    )
    await _until_shown(tmux, "q Quit")
    for key, (heading, own_keys) in SCREENS.items():
        await _tmux(*tmux, "send-keys", "-t", "tui", key)
        await _until_shown(tmux, heading)
        lines = await _shown_in_16_colours(
            tmux, own_keys[-1]
        )  # the footer is drawn last
        footer = " ".join(lines[-3:])
        for label in own_keys + APP_KEYS:
            assert label in footer, (
                f"{label!r} not in the footer of {heading}:\n" + "\n".join(lines)
            )

    # A details screen, a dialog, and back. One key at a time, each once the last is shown:
    # focus moves after a key is handled, and escape with a key right behind it is alt+key.
    for key, shown in [
        ("r", "Rooms ("),
        ("/", "Rooms ("),
        ("tmux room", "Rooms (1)"),
        ("Enter", "Rooms (1)"),
        ("Enter", "m Members"),
        ("Escape", "Rooms (1)"),
        ("u", "Users ("),
        ("x", "cannot log in again"),
    ]:
        await _tmux(*tmux, "send-keys", "-t", "tui", key)
        lines = await _shown_in_16_colours(tmux, shown)
        await asyncio.sleep(0.3)
    assert "/ Search" not in "\n".join(lines)  # nothing of the screen behind the dialog
    await _tmux(*tmux, "send-keys", "-t", "tui", "n")
    await _shown_in_16_colours(tmux, "x Deactivate")
