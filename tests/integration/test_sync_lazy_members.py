"""Lazy-loading members across incremental /syncs on a real server (client-server-api
§Lazy-loading room members): a device is not sent the same member event again unless the filter
sets include_redundant_members; a member that changed is sent again; a client syncing again
from an older token (its response was lost) gets them again; initial and full_state syncs start
over; each device has its own record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import login, running_server
from tests.integration.sync_helpers import User, create_room, join, new_user, send, sync

LAZY = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 20}}}
LAST_ONLY = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 1}}}
REDUNDANT = {
    "room": {
        "state": {"lazy_load_members": True, "include_redundant_members": True},
        "timeline": {"limit": 20},
    }
}


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("lazy")) as s:
        yield s


def _state_members(body: dict[str, Any], room_id: str) -> list[str]:
    room = body["rooms"]["join"].get(room_id)
    if room is None:
        return []
    return sorted(e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member")


async def _room(srv: RunningServer, prefix: str) -> tuple[User, User, User, str]:
    alice = await new_user(srv.client, f"{prefix}a")
    bob = await new_user(srv.client, f"{prefix}b")
    carol = await new_user(srv.client, f"{prefix}c")
    room_id = await create_room(alice, preset="public_chat")
    await join(bob, room_id)
    await join(carol, room_id)
    return alice, bob, carol, room_id


async def test_member_events_are_not_sent_twice(srv: RunningServer) -> None:
    alice, bob, carol, room_id = await _room(srv, "lz")
    await send(alice, room_id, "hello")
    first = await sync(bob, filter=LAZY)
    # The initial timeline holds every member event itself (they are the room's history).
    assert "m.room.member" in {e["type"] for e in first["rooms"]["join"][room_id]["timeline"]["events"]}

    await send(alice, room_id, "again")
    second = await sync(bob, since=first["next_batch"], filter=LAZY)
    assert [e["content"]["body"] for e in second["rooms"]["join"][room_id]["timeline"]["events"]] == ["again"]
    assert _state_members(second, room_id) == []  # alice's and bob's own: sent already

    # full_state starts over: the senders' members are sent again, then not repeated.
    await send(carol, room_id, "hi from carol")
    full = await sync(bob, since=second["next_batch"], filter=LAST_ONLY, full_state="true")
    assert _state_members(full, room_id) == sorted([bob.user_id, carol.user_id])
    await send(carol, room_id, "carol again")
    third = await sync(bob, since=full["next_batch"], filter=LAZY)
    assert _state_members(third, room_id) == []

    # include_redundant_members: every sender's member event every time (only the senders on
    # an incremental sync, as from Synapse: bob's own came with the full state).
    await send(carol, room_id, "and again")
    redundant = await sync(bob, since=third["next_batch"], filter=REDUNDANT)
    assert _state_members(redundant, room_id) == [carol.user_id]


async def test_lost_responses_changes_and_devices(srv: RunningServer) -> None:
    alice, bob, carol, room_id = await _room(srv, "lr")
    await send(carol, room_id, "c1")
    await send(alice, room_id, "a1")
    start = await sync(bob, filter=LAST_ONLY)
    assert _state_members(start, room_id) == sorted([alice.user_id, bob.user_id])

    await send(carol, room_id, "c2")
    first = await sync(bob, since=start["next_batch"], filter=LAST_ONLY)
    assert _state_members(first, room_id) == [carol.user_id]
    # The same request again (as if `first` never arrived): carol's member is sent again.
    retry = await sync(bob, since=start["next_batch"], filter=LAST_ONLY)
    assert _state_members(retry, room_id) == [carol.user_id]
    await send(carol, room_id, "c3")
    after = await sync(bob, since=first["next_batch"], filter=LAST_ONLY)
    assert _state_members(after, room_id) == []

    # A changed member is sent again (here as a state change the limited timeline skipped).
    resp = await carol.put(f"/profile/{carol.user_id}/displayname", {"displayname": "Caz"})
    assert resp.status_code == 200, resp.text
    await send(carol, room_id, "c4")
    renamed = await sync(bob, since=after["next_batch"], filter=LAST_ONLY)
    members = [e for e in renamed["rooms"]["join"][room_id]["state"]["events"] if e["type"] == "m.room.member"]
    assert [(e["state_key"], e["content"].get("displayname")) for e in members] == [(carol.user_id, "Caz")]

    # Another device of bob's has its own record: its initial sync leaves this one's alone.
    token = (await login(srv.client, bob.user_id)).json()["access_token"]
    other = User(srv.client, bob.user_id, token, "other")
    other_start = await sync(other, filter=LAST_ONLY)
    assert _state_members(other_start, room_id) == sorted([bob.user_id, carol.user_id])
    await send(carol, room_id, "c5")
    later = await sync(bob, since=renamed["next_batch"], filter=LAST_ONLY)
    assert _state_members(later, room_id) == []
    other_later = await sync(other, since=other_start["next_batch"], filter=LAST_ONLY)
    assert _state_members(other_later, room_id) == []


async def test_gapped_sync_sends_members_who_changed_in_the_gap(srv: RunningServer) -> None:
    alice, bob, carol, room_id = await _room(srv, "gap")
    first = await sync(alice, filter=LAST_ONLY)
    dave = await new_user(srv.client, "gapd")
    await join(dave, room_id)  # in the gap: before the timeline's one event
    for i in range(3):
        await send(bob, room_id, f"m{i}")
    body = await sync(alice, since=first["next_batch"], filter=LAST_ONLY)
    assert body["rooms"]["join"][room_id]["timeline"]["limited"]
    assert dave.user_id in _state_members(body, room_id)


async def test_gapped_sync_sends_an_old_member_who_starts_speaking(srv: RunningServer) -> None:
    alice, bob, carol, room_id = await _room(srv, "old")
    await send(bob, room_id, "bob speaks")
    first = await sync(alice, filter=LAST_ONLY)
    assert carol.user_id not in _state_members(first, room_id)
    for i in range(3):
        await send(bob, room_id, f"b{i}")
    await send(carol, room_id, "carol is back")
    body = await sync(alice, since=first["next_batch"], filter=LAST_ONLY)
    assert body["rooms"]["join"][room_id]["timeline"]["limited"]
    assert _state_members(body, room_id) == [carol.user_id]


async def test_redundant_members_on_incremental_sync_are_the_senders(srv: RunningServer) -> None:
    alice, bob, carol, room_id = await _room(srv, "red")
    await send(bob, room_id, "b")
    first = await sync(alice, filter=REDUNDANT)
    await send(bob, room_id, "again")
    await send(carol, room_id, "me too")
    body = await sync(alice, since=first["next_batch"], filter=REDUNDANT)
    assert _state_members(body, room_id) == sorted([bob.user_id, carol.user_id])
