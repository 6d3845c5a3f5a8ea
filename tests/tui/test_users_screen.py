"""The Users screen (key u) against a real server: accounts registered through the client API
listed in order and searchable; n creates, x deactivates (after a confirmation), w resets a
password, a toggles the admin flag, v lists devices and deletes one. What the server then
says (the admin API, /login) is checked, not only what the table shows."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from dendrite_lite.tui.screens import users as users_screen
from dendrite_lite.tui.screens.not_running import NotRunningScreen
from dendrite_lite.tui.screens.users import DevicesScreen, UsersScreen
from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import login, register, running_server
from tests.tui.pilot_helpers import (
    admin_get,
    answer,
    confirm,
    open_tui,
    table_rows,
    toasts,
    until,
)


def _user(admin_socket: Path, user_id: str) -> Any:
    return admin_get(admin_socket, f"/_synapse/admin/v2/users/{user_id}")


async def _one_user(pilot: Pilot[None], client: httpx.AsyncClient, prefix: str) -> str:
    """Register `prefix`-<random>, search for it, and leave the cursor on it."""
    localpart = f"{prefix}-{uuid.uuid4().hex[:8]}"
    user_id = (await register(client, localpart))["user_id"]
    await pilot.press("slash", *localpart, "enter")
    await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == [user_id])
    return user_id


async def test_users_are_listed_in_order_and_searchable(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    for name in ("carol", "alice", "bob"):
        await register(tui_server.client, f"{tag}-{name}")
    async with open_tui(admin_socket, "u") as pilot:
        assert isinstance(pilot.app.screen, UsersScreen)
        listed = [r[0] for r in table_rows(pilot)]
        ours = [u for u in listed if u.startswith(f"@{tag}-")]
        assert ours == [f"@{tag}-{n}:{SERVER_NAME}" for n in ("alice", "bob", "carol")]
        assert listed == sorted(listed)

        await pilot.press("slash", *f"{tag}-b")
        await until(
            pilot,
            lambda: [r[0] for r in table_rows(pilot)] == [f"@{tag}-bob:{SERVER_NAME}"],
        )
        row = table_rows(pilot)[0]
        assert row[1] == f"{tag}-bob"  # the display name registration set
        assert row[2:4] == ["", ""]  # not an admin, not deactivated


async def test_n_creates_a_user_who_can_log_in(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    localpart = f"new-{uuid.uuid4().hex[:8]}"
    user_id = f"@{localpart}:{SERVER_NAME}"
    async with open_tui(admin_socket, "u") as pilot:
        await pilot.press("n")
        await answer(pilot, user_id)
        await answer(pilot, "first password")
        await until(pilot, lambda: user_id in [r[0] for r in table_rows(pilot)])
    assert (await _user(admin_socket, user_id))["deactivated"] is False
    assert (
        await login(tui_server.client, localpart, "first password")
    ).status_code == 200


async def test_a_refused_create_is_a_notification(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    async with open_tui(admin_socket, "u") as pilot:
        await pilot.press("n")
        await answer(pilot, "@someone:elsewhere.example")  # not ours to create
        await answer(pilot, "a password")
        await until(pilot, lambda: any("M_" in t for t in toasts(pilot)))
        assert isinstance(pilot.app.screen, UsersScreen)


async def test_x_deactivates_after_confirmation(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    async with open_tui(admin_socket, "u") as pilot:
        user_id = await _one_user(pilot, tui_server.client, "leaver")
        await confirm(pilot, "x", yes=False)
        assert (await _user(admin_socket, user_id))["deactivated"] is False

        await confirm(pilot, "x")
        await until(pilot, lambda: table_rows(pilot)[0][3] == "yes")
    assert (await _user(admin_socket, user_id))["deactivated"] is True
    assert (await login(tui_server.client, user_id)).status_code == 403


async def test_w_resets_the_password(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    async with open_tui(admin_socket, "u") as pilot:
        user_id = await _one_user(pilot, tui_server.client, "forgetful")
        await pilot.press("w")
        await answer(pilot, "the new one")
        await until(pilot, lambda: any("reset" in t for t in toasts(pilot)))
    assert (await login(tui_server.client, user_id, "the new one")).status_code == 200
    assert (await login(tui_server.client, user_id)).status_code == 403


async def test_a_toggles_the_admin_flag(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    async with open_tui(admin_socket, "u") as pilot:
        user_id = await _one_user(pilot, tui_server.client, "promoted")
        await pilot.press("a")
        await until(pilot, lambda: table_rows(pilot)[0][2] == "yes")
        assert (
            await admin_get(admin_socket, f"/_synapse/admin/v1/users/{user_id}/admin")
        )["admin"] is True
        await pilot.press("a")
        await until(pilot, lambda: table_rows(pilot)[0][2] == "")
    assert (await admin_get(admin_socket, f"/_synapse/admin/v1/users/{user_id}/admin"))[
        "admin"
    ] is False


async def test_v_lists_devices_and_deletes_one(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    async with open_tui(admin_socket, "u") as pilot:
        user_id = await _one_user(pilot, tui_server.client, "twodevices")
        second = (await login(tui_server.client, user_id, device_id="SECONDDEV")).json()
        devices = f"/_synapse/admin/v2/users/{user_id}/devices"
        first = next(
            d["device_id"]
            for d in (await admin_get(admin_socket, devices))["devices"]
            if d["device_id"] != second["device_id"]
        )

        await pilot.press("v")
        await until(
            pilot,
            lambda: (
                isinstance(pilot.app.screen, DevicesScreen)
                and len(table_rows(pilot)) == 2
            ),
        )
        assert sorted(r[0] for r in table_rows(pilot)) == sorted([first, "SECONDDEV"])

        await pilot.press("slash", *"SECOND", "enter")
        await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == ["SECONDDEV"])
        await confirm(pilot, "delete")
        await until(pilot, lambda: table_rows(pilot) == [])
        assert [
            d["device_id"] for d in (await admin_get(admin_socket, devices))["devices"]
        ] == [first]

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, UsersScreen))


async def test_a_page_says_how_many_the_server_has(
    tui_server: RunningServer, admin_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("one", "two", "three"):
        await register(tui_server.client, f"paged-{uuid.uuid4().hex[:6]}-{name}")
    monkeypatch.setattr(users_screen, "PAGE", 2)
    total = (
        await admin_get(admin_socket, "/_synapse/admin/v2/users", deactivated="true")
    )["total"]
    async with open_tui(admin_socket, "u") as pilot:
        assert len(table_rows(pilot)) == 2
        heading = pilot.app.screen.query_one("#heading", Static)
        assert str(heading.render()) == f"Users (2 of {total}: search to narrow)"


async def test_a_server_gone_mid_session_shows_not_running(tmp_path: Path) -> None:
    # A server of its own: this test stops it.
    async with running_server(tmp_path) as srv:
        assert srv.listening.admin_socket is not None
        async with open_tui(srv.listening.admin_socket, "u") as pilot:
            await srv.stop()
            await pilot.press(
                "ctrl+r"
            )  # the screen's own request, not the app's status poll
            await until(pilot, lambda: isinstance(pilot.app.screen, NotRunningScreen))
