"""The deprecated sync endpoints still in the spec (old_sync.yaml, room_initial_sync.yaml):
GET /events, GET /initialSync, GET /rooms/{roomId}/initialSync, GET /events/{eventId}."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import (
    User,
    create_room,
    join,
    numbered_user,
    send,
)
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("legacy-sync")) as s:
        yield s


async def _events(user: User, **params: object) -> dict:
    resp = await user.client.get(
        "/_matrix/client/r0/events", params=params, headers=user.headers
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # The spec lists room events only; presence, typing and account data come along as in
    # Synapse (SyTest's presence and typing tests watch for them here).
    rooms_only = {**body, "chunk": [e for e in body["chunk"] if "event_id" in e]}
    assert_matches_operation("client-server/old_sync.yaml", "/events", "get", 200, rooms_only)
    return body


async def test_event_stream_from_end_carries_new_room_events(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    first = await _events(alice, timeout=0)
    event_id = await send(alice, room, "hello")
    later = await _events(alice, timeout=1000, **{"from": first["end"]})
    got = [e for e in later["chunk"] if e.get("event_id") == event_id]
    assert got and got[0]["room_id"] == room and got[0]["content"]["body"] == "hello"
    again = await _events(alice, timeout=0, **{"from": later["end"]})
    assert all(e.get("event_id") != event_id for e in again["chunk"])


async def test_event_stream_rejects_malformed_params(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    for params in ({"timeout": "x"}, {"limit": "x"}, {"limit": "-1"}):
        resp = await alice.client.get(
            "/_matrix/client/v3/events", params=params, headers=alice.headers
        )
        assert resp.status_code == 400, (params, resp.text)


async def test_global_initial_sync_lists_rooms_with_messages_and_state(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="Lounge")
    await send(alice, room, "one")
    resp = await alice.get("/initialSync", limit=1)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_matches_operation("client-server/old_sync.yaml", "/initialSync", "get", 200, body)
    (entry,) = [r for r in body["rooms"] if r["room_id"] == room]
    assert entry["membership"] == "join"
    assert [e["content"].get("body") for e in entry["messages"]["chunk"]] == ["one"]
    names = [e for e in entry["state"] if e["type"] == "m.room.name"]
    assert names and names[0]["content"]["name"] == "Lounge"
    assert (await alice.get("/initialSync", limit="x")).status_code == 400


async def test_room_initial_sync_and_peeking_a_world_readable_room(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice, initial_state=[{
        "type": "m.room.history_visibility", "state_key": "",
        "content": {"history_visibility": "world_readable"},
    }])
    await send(alice, room, "before")
    resp = await bob.get(f"/rooms/{room}/initialSync")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_matches_operation(
        "client-server/room_initial_sync.yaml", "/rooms/{roomId}/initialSync", "get", 200, body
    )
    assert "before" in [e["content"].get("body") for e in body["messages"]["chunk"]]
    assert "membership" not in body
    # The room's `end` is where a peek over /events starts (SyTest SYN-606).
    after = await send(alice, room, "after")
    peek = await _events(bob, room_id=room, timeout=1000, **{"from": body["messages"]["end"]})
    assert [e["event_id"] for e in peek["chunk"]] == [after]
    # A peeker is sent the room's typing notices too, as Synapse does.
    resp = await alice.put(f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 5000})
    assert resp.status_code == 200, resp.text
    typing = await _events(bob, room_id=room, timeout=1000, **{"from": peek["end"]})
    got = [(e["type"], e["room_id"]) for e in typing["chunk"] if e["type"] != "m.presence"]
    assert got == [("m.typing", room)]


async def test_room_initial_sync_refuses_a_private_room_to_non_members(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice)
    assert (await bob.get(f"/rooms/{room}/initialSync")).status_code == 403


async def test_get_event_by_id_checks_visibility(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice)
    event_id = await send(alice, room, "secret")
    resp = await alice.get(f"/events/{event_id}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["content"]["body"] == "secret"
    assert (await bob.get(f"/events/{event_id}")).status_code in (403, 404)
    await join(alice, room)


async def test_initial_syncs_use_the_v1_format_with_presence_and_account_data(
    srv: RunningServer,
) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    resp = await bob.put(
        f"/user/{bob.user_id}/rooms/{room}/account_data/my.type", {"cats_or_rats": "rats"}
    )
    assert resp.status_code == 200, resp.text
    body = (await bob.get("/initialSync")).json()
    # Presence of a new, never-online user: their own, content naming them (Synapse, SYT-34).
    assert bob.user_id in [e["content"].get("user_id") for e in body["presence"]]
    assert "m.push_rules" not in [e["type"] for e in body["account_data"]]
    room_body = (await bob.get(f"/rooms/{room}/initialSync")).json()
    members = {e["user_id"]: e for e in room_body["state"] if e["type"] == "m.room.member"}
    assert members[bob.user_id]["content"]["membership"] == "join"
    assert room_body["membership"] == "join"
    # Every member's presence, offline ones too.
    assert {alice.user_id, bob.user_id} <= {e["content"]["user_id"] for e in room_body["presence"]}
    assert [e["type"] for e in room_body["account_data"]] == ["my.type"]
    # After leaving, no presence (SPEC-216: nothing from after the leave).
    assert (await bob.post(f"/rooms/{room}/leave", {})).status_code == 200
    left = (await bob.get(f"/rooms/{room}/initialSync")).json()
    assert left["membership"] == "leave" and left["presence"] == []
