"""The Federation screen (key f) against a real server: destinations with their health, enter
for one's details, R resets its connection (after a confirmation), c runs the doctor's checks
against it through the admin socket."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from dendrite_lite.api.admin import federation_check
from dendrite_lite.storage import destinations
from dendrite_lite.tui.screens.federation import FederationScreen, FindingsScreen
from dendrite_lite.tui.widgets import DetailsScreen
from tests.conftest import RunningServer
from tests.integration.account_helpers import server_storage
from tests.tui.pilot_helpers import (
    admin_get,
    confirm,
    details_text,
    open_tui,
    table_rows,
    until,
)

BACKOFF_MS = 3_600_000


async def _failing(srv: RunningServer, name: str, reason: str) -> None:
    """What the sender records after failing to reach `name` (the test has no peer to fail on)."""
    now = int(time.time() * 1000)

    async def write(conn: aiosqlite.Connection) -> None:
        await destinations.upsert_destination_success(conn, name, now - 7_200_000)
        await destinations.upsert_destination_failure(
            conn, name, now - 1_800_000, reason, BACKOFF_MS, now + BACKOFF_MS
        )

    await server_storage(srv).db.write(write)


def _destination(admin_socket: Path, name: str) -> Any:
    return admin_get(admin_socket, f"/_synapse/admin/v1/federation/destinations/{name}")


async def test_destinations_show_their_health(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    name = f"down-{uuid.uuid4().hex[:6]}.test"
    await _failing(tui_server, name, "connection refused")
    async with open_tui(admin_socket, "f") as pilot:
        assert isinstance(pilot.app.screen, FederationScreen)
        row = next(r for r in table_rows(pilot) if r[0] == name)
        assert row[1] == "2.0 h ago"  # last success
        assert row[2] == "30 min ago"  # last error
        assert row[3] == "60 min"  # backoff

        await pilot.press("slash", *name, "enter")
        await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == [name])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailsScreen))
        assert "connection refused" in details_text(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, FederationScreen))


async def test_r_resets_the_connection(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    name = f"reset-{uuid.uuid4().hex[:6]}.test"
    await _failing(tui_server, name, "timed out")
    assert (await _destination(admin_socket, name))["retry_interval"] == BACKOFF_MS
    async with open_tui(admin_socket, "f") as pilot:
        await pilot.press("slash", *name, "enter")
        await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == [name])
        await confirm(pilot, "R")
        await until(pilot, lambda: table_rows(pilot)[0][3] == "")  # no backoff shown
    assert (await _destination(admin_socket, name))["retry_interval"] == 0


async def test_c_runs_the_doctor_against_a_destination(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    # Nothing listens on port 1: the checks fail fast, on loopback, with a fix to show.
    name = "127.0.0.1:1"
    await _failing(tui_server, name, "connection refused")
    async with open_tui(admin_socket, "f") as pilot:
        await pilot.press("slash", *name, "enter")
        await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == [name])
        await pilot.press("c")
        await until(
            pilot, lambda: isinstance(pilot.app.screen, FindingsScreen), timeout_s=15
        )
        screen = pilot.app.screen
        assert screen.heading == f"Doctor: {name} FAIL"
        rows = table_rows(pilot)
        assert ["OK", "server name"] == rows[0][:2]
        failed = [i for i, r in enumerate(rows) if r[0] == "FAIL"]
        assert failed, rows
        await pilot.press(*["down"] * failed[0], "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailsScreen))
        assert "FAIL" in details_text(pilot)
        assert "Fix:" in details_text(pilot)
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, FederationScreen))


async def test_c_on_a_server_that_never_answers_says_so_in_time(
    tui_server: RunningServer, admin_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It accepts connections and never says a word, so every check would wait its timeout.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    name = f"127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    monkeypatch.setattr(federation_check, "CHECK_TIMEOUT_S", 1.0)
    await _failing(tui_server, name, "timed out")
    try:
        async with open_tui(admin_socket, "f") as pilot:
            await pilot.press("slash", *name, "enter")
            await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == [name])
            await pilot.press("c")
            await until(
                pilot,
                lambda: (
                    isinstance(pilot.app.screen, FindingsScreen) and table_rows(pilot)
                ),
            )
            [finding] = table_rows(pilot)
            assert finding[:2] == ["FAIL", "federation"]
            assert finding[2].startswith(f"The checks of {name} did not finish in 1 s")
    finally:
        silent.close()
