"""Smoke test of `dendrite-lite tui` as a person runs it: the real command in an 80x24 tmux
pane (a terminal of its own, as over SSH), against a real server; what the pane shows is read
back with `tmux capture-pane` and checked line by line."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register
from tests.peers import find_program, peer_missing

V3 = "/_matrix/client/v3"
# SGR colour parameters a 16-colour terminal has: 30-37/90-97 (foreground), 40-47/100-107
# (background), 39/49 (default). 38;5;N and 38;2;R;G;B (256 and true colour) are not among them.
_WIDE_COLOUR = re.compile(r"\x1b\[[0-9;]*(?:[34]8;[25];)")


async def _tmux(tmux: str, server: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        tmux, "-S", server, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"tmux {' '.join(args)}: {err.decode()}"
    return out.decode()


@pytest.fixture
async def tmux(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """tmux, and the socket of a tmux server of this test's own, in its temporary directory
    (the server is killed afterwards with what runs in it)."""
    program = find_program("tmux")
    if program is None:
        peer_missing("tmux is not installed (apt-get install tmux)")
    server = str(tmp_path / "tmux.sock")
    yield program, server
    proc = await asyncio.create_subprocess_exec(
        program, "-S", server, "kill-server",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


async def _capture(tmux: tuple[str, str], *, colours: bool = False) -> str:
    return await _tmux(*tmux, "capture-pane", "-p", *(["-e"] if colours else []), "-t", "tui")


async def _until_shown(tmux: tuple[str, str], text: str, timeout_s: float = 30.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        screen = await _capture(tmux)
        if text in screen:
            return screen
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{text!r} not on screen after {timeout_s} s:\n{screen}")
        await asyncio.sleep(0.2)


async def test_tui_in_an_80x24_tmux_pane(
    tui_server: RunningServer, tmux: tuple[str, str], tmp_path: Path
) -> None:
    data_dir = tui_server.config.server.data_dir
    config = tmp_path / "dendrite-lite.toml"
    config.write_text(
        f'[server]\nserver_name = "{tui_server.config.server.server_name}"\n'
        f'data_dir = "{data_dir}"\n'
    )
    owner = await register(tui_server.client, "tmux_owner")
    resp = await tui_server.client.post(
        f"{V3}/createRoom", json={}, headers=auth_header(owner["access_token"])
    )
    assert resp.status_code == 200
    expected = await tui_server.app().extensions["dendrite_lite"].server_status.snapshot()
    # A terminal that claims true colour: the TUI must still use only the 16 ANSI colours.
    command = (
        f"env TERM=xterm-256color COLORTERM=truecolor {sys.executable} -m dendrite_lite tui"
        f" --config {config}"
    )
    await _tmux(
        *tmux, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
        "-e", f"PATH={os.environ.get('PATH', '')}", command,
    )
    screen = await _until_shown(tmux, "Registration")
    lines = screen.rstrip("\n").split("\n")
    assert len(lines) == 24, screen
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].split("·")[0].strip() == "test.localhost"
    assert "dendrite-lite 0.1.0" in lines[0]
    users = next(line for line in lines if line.strip().startswith("Users"))
    assert users.split()[:3] == ["Users", str(expected["users"]["local"]), "local,"]
    rooms = next(line for line in lines if line.strip().startswith("Rooms"))
    assert rooms.split() == ["Rooms", str(expected["rooms"])]
    footer = lines[-1]
    for key in ("d Dashboard", "l Logs", "q Quit"):
        assert key in footer, footer
    # Colours: only the 16 a basic terminal has.
    coloured = await _capture(tmux, colours=True)
    assert not _WIDE_COLOUR.search(coloured)
    # A key switches screens; q quits and the pane's command ends.
    await _tmux(*tmux, "send-keys", "-t", "tui", "l")
    await _until_shown(tmux, "Logs (live)")
    await _tmux(*tmux, "send-keys", "-t", "tui", "q")
    await _until_ended(tmux)


async def _until_ended(tmux: tuple[str, str], timeout_s: float = 10.0) -> None:
    """Wait for the pane's command to exit (tmux then closes the session)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        proc = await asyncio.create_subprocess_exec(
            tmux[0], "-S", tmux[1], "has-session", "-t", "tui",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        if await proc.wait() != 0:
            return
        assert asyncio.get_running_loop().time() < deadline, "q did not quit the TUI"
        await asyncio.sleep(0.1)
