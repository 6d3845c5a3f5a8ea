"""Driving the TUI in the admin screens' tests: the real app at 80x24 on the session server's
admin socket, waiting for what the screen shows rather than for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from dendrite_lite.tui.admin_client import AdminClient, AdminRequestError
from dendrite_lite.tui.app import DendriteLiteApp
from dendrite_lite.tui.widgets import ConfirmDialog, InputDialog

__all__ = [
    "admin_get",
    "answer",
    "assert_gone",
    "confirm",
    "details_text",
    "open_tui",
    "table_rows",
    "toasts",
    "until",
]

SIZE = (80, 24)


@contextlib.asynccontextmanager
async def open_tui(admin_socket: Path, key: str) -> AsyncIterator[Pilot[None]]:
    """The app on an 80x24 terminal, showing the screen of `key` (after its first load)."""
    app = DendriteLiteApp(AdminClient(admin_socket), poll_s=60)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press(key)
        await until(pilot, lambda: pilot.app.screen.query(DataTable) and _loaded(pilot))
        yield pilot


async def admin_get(admin_socket: Path, path: str, **params: str) -> dict[str, Any]:
    """What the admin API says, asked apart from the app (to check what an action did)."""
    client = AdminClient(admin_socket)
    try:
        return await client.get(path, **params)
    finally:
        await client.aclose()


async def assert_gone(admin_socket: Path, path: str) -> None:
    """The admin API answers 404 for `path`."""
    try:
        await admin_get(admin_socket, path)
    except AdminRequestError as e:
        assert e.status == 404, e
    else:
        raise AssertionError(f"{path} is still there")


def _loaded(pilot: Pilot[None]) -> bool:
    heading = pilot.app.screen.query("#heading")
    return bool(heading) and str(heading.first(Static).render()).endswith(")")


async def until(
    pilot: Pilot[None], predicate: Callable[[], object], timeout_s: float = 10.0
) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not _holds(predicate):
        if loop.time() > deadline:
            raise AssertionError(
                f"not true after {timeout_s} s: screen {pilot.app.screen!r}"
            )
        await pilot.pause(0.05)


def _holds(predicate: Callable[[], object]) -> bool:
    # On a loaded machine one status poll can time out: the app then shows its not-running
    # screen over the one under test until the next poll answers (2 s later), and the
    # predicate's widget is not found meanwhile. That is "not yet", not a failure.
    try:
        return bool(predicate())
    except NoMatches:
        return False


def table_rows(pilot: Pilot[None], selector: str = "DataTable") -> list[list[str]]:
    """The rows the current screen's (first matching) table shows, as text."""
    table = pilot.app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def toasts(pilot: Pilot[None]) -> list[str]:
    """The text of the notifications on screen."""
    return [str(toast.render()) for toast in pilot.app.screen.query("Toast")]


def details_text(pilot: Pilot[None]) -> str:
    return str(pilot.app.screen.query_one("#details", Static).render())


async def confirm(pilot: Pilot[None], key: str, yes: bool = True) -> None:
    """Press `key`, wait for its confirmation dialog, answer it."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
    await pilot.press("y" if yes else "n")
    await until(pilot, lambda: not isinstance(pilot.app.screen, ConfirmDialog))


async def answer(pilot: Pilot[None], text: str) -> None:
    """Type `text` into the input dialog on screen (waiting for it) and press enter."""
    await until(pilot, lambda: isinstance(pilot.app.screen, InputDialog))
    dialog = pilot.app.screen
    await pilot.press(*text)
    await pilot.press("enter")
    await until(pilot, lambda: pilot.app.screen is not dialog)
