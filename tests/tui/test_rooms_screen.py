"""The Rooms screen (key r) against a real server: rooms made through the client API listed
biggest first and searchable; enter shows members, state and recent events; b blocks and
unblocks, D deletes, each after a confirmation, as the admin API then reports."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from textual.pilot import Pilot

from dendrite_lite.tui.screens.rooms import RoomDetailsScreen, RoomsScreen
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register
from tests.tui.pilot_helpers import (
    admin_get,
    assert_gone,
    confirm,
    open_tui,
    table_rows,
    toasts,
    until,
)

V3 = "/_matrix/client/v3"


async def _user(client: httpx.AsyncClient, prefix: str) -> tuple[str, dict[str, str]]:
    who = await register(client, f"{prefix}-{uuid.uuid4().hex[:8]}")
    return who["user_id"], auth_header(who["access_token"])


async def _room(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> str:
    resp = await client.post(
        f"{V3}/createRoom",
        json={"name": name, "preset": "public_chat"},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    room_id: str = resp.json()["room_id"]
    return room_id


async def _room_of_two(
    client: httpx.AsyncClient, name: str
) -> tuple[str, str, str, dict[str, str]]:
    """A room alice made and bob joined: (alice's ID, bob's ID, room ID, bob's auth header)."""
    alice_id, alice = await _user(client, "alice")
    bob_id, bob = await _user(client, "bob")
    room = await _room(client, alice, name)
    resp = await client.post(f"{V3}/join/{room}", json={}, headers=bob)
    assert resp.status_code == 200, resp.text
    return alice_id, bob_id, room, bob


async def _find(pilot: Pilot[None], term: str, names: list[str]) -> None:
    await pilot.press("slash", *term, "enter")
    await until(pilot, lambda: [r[0] for r in table_rows(pilot)] == names)


async def test_rooms_are_listed_biggest_first_and_searchable(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    _, alice = await _user(tui_server.client, "alice")
    await _room(tui_server.client, alice, f"{tag} small")
    _, _, big, _ = await _room_of_two(tui_server.client, f"{tag} big")
    async with open_tui(admin_socket, "r") as pilot:
        assert isinstance(pilot.app.screen, RoomsScreen)
        await _find(pilot, tag, [f"{tag} big", f"{tag} small"])
        big_row, small_row = table_rows(pilot)
        assert big_row[2:] == ["2", "2", big]  # members, local members, room ID
        assert small_row[2:4] == ["1", "1"]
        await _find(pilot, f"{tag} sma", [f"{tag} small"])


async def test_enter_shows_members_state_and_recent_events(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    alice_id, bob_id, room, bob = await _room_of_two(
        tui_server.client, f"{tag} details"
    )
    await tui_server.client.put(
        f"{V3}/rooms/{room}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": f"hello {tag}"},
        headers=bob,
    )
    async with open_tui(admin_socket, "r") as pilot:
        await _find(pilot, tag, [f"{tag} details"])
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                isinstance(pilot.app.screen, RoomDetailsScreen)
                and table_rows(pilot, "#events-table")
            ),
        )
        assert sorted(r[0] for r in table_rows(pilot, "#members-table")) == sorted(
            [alice_id, bob_id]
        )

        await pilot.press("s")
        state = table_rows(pilot, "#state-table")
        assert ["m.room.create", "", alice_id] in state
        assert ["m.room.member", bob_id, bob_id] in state

        await pilot.press("e")
        newest = table_rows(pilot, "#events-table")[0]
        assert newest[1:] == [bob_id, "m.room.message", f"hello {tag}"]

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(pilot.app.screen, RoomsScreen))


async def test_b_blocks_and_unblocks_after_confirmation(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    _, alice = await _user(tui_server.client, "alice")
    room = await _room(tui_server.client, alice, f"{tag} blockme")
    block = f"/_synapse/admin/v1/rooms/{room}/block"
    async with open_tui(admin_socket, "r") as pilot:
        await _find(pilot, tag, [f"{tag} blockme"])
        await confirm(pilot, "b", yes=False)
        assert (await admin_get(admin_socket, block))["block"] is False

        await confirm(pilot, "b")
        await until(pilot, lambda: any(t.startswith("Blocked") for t in toasts(pilot)))
        assert (await admin_get(admin_socket, block))["block"] is True
        _, carol = await _user(tui_server.client, "carol")
        assert (
            await tui_server.client.post(f"{V3}/join/{room}", json={}, headers=carol)
        ).status_code == 403

        await confirm(pilot, "b")
        await until(
            pilot, lambda: any(t.startswith("Unblocked") for t in toasts(pilot))
        )
    assert (await admin_get(admin_socket, block))["block"] is False


async def test_shift_d_deletes_after_confirmation(
    tui_server: RunningServer, admin_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    _, alice = await _user(tui_server.client, "alice")
    room = await _room(tui_server.client, alice, f"{tag} doomed")
    async with open_tui(admin_socket, "r") as pilot:
        await _find(pilot, tag, [f"{tag} doomed"])
        await confirm(pilot, "D", yes=False)
        assert (await admin_get(admin_socket, f"/_synapse/admin/v1/rooms/{room}"))[
            "room_id"
        ] == room

        await confirm(pilot, "D")
        await until(pilot, lambda: table_rows(pilot) == [])
    await assert_gone(admin_socket, f"/_synapse/admin/v1/rooms/{room}")
