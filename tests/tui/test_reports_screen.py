"""The Reports screen (key p) against a real server: reports made through the client API are
listed newest first, enter shows one with its event, x dismisses it after a confirmation."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from dendrite_lite.tui.screens.reports import ReportsScreen
from dendrite_lite.tui.widgets import DetailsScreen
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register
from tests.tui.pilot_helpers import (
    admin_get,
    assert_gone,
    confirm,
    details_text,
    open_tui,
    table_rows,
    until,
)

V3 = "/_matrix/client/v3"


async def _report(client: httpx.AsyncClient, reason: str) -> tuple[str, str, str]:
    """A fresh user's room, message and report of it: (reporter, room ID, event ID)."""
    who = await register(client, f"reporter-{uuid.uuid4().hex[:8]}")
    headers = auth_header(who["access_token"])
    room = (
        await client.post(
            f"{V3}/createRoom", json={"name": "Reported"}, headers=headers
        )
    ).json()["room_id"]
    sent = await client.put(
        f"{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
        json={"msgtype": "m.text", "body": f"the bad message {reason}"},
        headers=headers,
    )
    event_id = sent.json()["event_id"]
    resp = await client.post(
        f"{V3}/rooms/{room}/report/{event_id}", json={"reason": reason}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    return who["user_id"], room, event_id


async def _report_ids(admin_socket: Path) -> dict[str, str]:
    answer = await admin_get(admin_socket, "/_synapse/admin/v1/event_reports")
    return {r["reason"]: str(r["id"]) for r in answer["event_reports"]}


async def test_reports_are_listed_newest_first_and_searchable(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    reporter, room_id, _ = await _report(tui_server.client, f"spam {tag} one")
    await _report(tui_server.client, f"spam {tag} two")
    async with open_tui(admin_socket, "p") as pilot:
        assert isinstance(pilot.app.screen, ReportsScreen)
        reasons = [row[5] for row in table_rows(pilot)]
        assert reasons.index(f"spam {tag} two") < reasons.index(f"spam {tag} one")
        row = next(r for r in table_rows(pilot) if r[5] == f"spam {tag} one")
        assert row[4] == reporter
        assert row[2] in (
            "Reported",
            room_id,
        )  # the room's name when the server gives it

        await pilot.press("slash", *f"{tag} one")
        await until(
            pilot, lambda: [r[5] for r in table_rows(pilot)] == [f"spam {tag} one"]
        )


async def test_enter_shows_the_report_and_its_event(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    reason = f"abuse {tag}"
    _, _, event_id = await _report(tui_server.client, reason)
    async with open_tui(admin_socket, "p") as pilot:
        await pilot.press("slash", *tag, "enter")
        await until(pilot, lambda: len(table_rows(pilot)) == 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailsScreen))
        text = details_text(pilot)
        assert f"reason: {reason}" in text
        assert event_id in text
        assert f"the bad message {reason}" in text  # the reported event itself
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, ReportsScreen))


async def test_x_dismisses_a_report_after_confirmation(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    await _report(tui_server.client, f"dismiss {tag}")
    report_id = (await _report_ids(admin_socket))[f"dismiss {tag}"]
    async with open_tui(admin_socket, "p") as pilot:
        await pilot.press("slash", *tag, "enter")
        await until(pilot, lambda: len(table_rows(pilot)) == 1)

        await confirm(pilot, "x", yes=False)  # "no" keeps it
        assert len(table_rows(pilot)) == 1

        await confirm(pilot, "x")
        await until(pilot, lambda: table_rows(pilot) == [])
    assert f"dismiss {tag}" not in await _report_ids(admin_socket)
    await assert_gone(admin_socket, f"/_synapse/admin/v1/event_reports/{report_id}")
