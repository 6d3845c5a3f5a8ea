"""POST/GET /user/{userId}/filter and filters applied by /sync, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import (
    bodies,
    create_room,
    join,
    numbered_user,
    send,
    sync,
)
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("filters")) as s:
        yield s


FILTER = {"room": {"timeline": {"limit": 3, "types": ["m.room.message"]}}, "presence": {"types": []}}


async def test_upload_and_download_filter(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    resp = await alice.post(f"/user/{alice.user_id}/filter", FILTER)
    assert resp.status_code == 200, resp.text
    assert_matches_operation(
        "client-server/filter.yaml", "/user/{userId}/filter", "post", 200, resp.json()
    )
    filter_id = resp.json()["filter_id"]
    assert isinstance(filter_id, str) and not filter_id.startswith("{")
    got = await alice.get(f"/user/{alice.user_id}/filter/{filter_id}")
    assert got.status_code == 200 and got.json() == FILTER
    # The same filter again gets the same id; another one a new id.
    again = await alice.post(f"/user/{alice.user_id}/filter", FILTER)
    assert again.json()["filter_id"] == filter_id
    other = await alice.post(f"/user/{alice.user_id}/filter", {"room": {"include_leave": True}})
    assert other.json()["filter_id"] != filter_id


async def test_filter_errors(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    resp = await alice.post(f"/user/{bob.user_id}/filter", FILTER)
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    filter_id = (await alice.post(f"/user/{alice.user_id}/filter", FILTER)).json()["filter_id"]
    resp = await bob.get(f"/user/{alice.user_id}/filter/{filter_id}")
    assert resp.status_code == 403
    for unknown in ("999", "abc"):
        resp = await alice.get(f"/user/{alice.user_id}/filter/{unknown}")
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.post(f"/user/{alice.user_id}/filter", {"room": {"timeline": {"limit": "x"}}})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    # Unknown filter ids on /sync are a bad parameter.
    resp = await alice.get("/sync", filter="12345")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_sync_with_stored_and_inline_filters(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="Filtered")
    for i in range(5):
        await send(alice, room, f"f{i}")
    filter_id = (await alice.post(f"/user/{alice.user_id}/filter", FILTER)).json()["filter_id"]
    for f in (filter_id, FILTER):
        body = await sync(alice, filter=f)
        timeline = body["rooms"]["join"][room]["timeline"]
        assert [e["type"] for e in timeline["events"]] == ["m.room.message"] * 3
        assert bodies(timeline["events"]) == ["f2", "f3", "f4"]
        assert timeline["limited"] is True


async def test_sync_filter_rooms_senders_and_not_types(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room1 = await create_room(alice, preset="public_chat")
    room2 = await create_room(alice, preset="public_chat")
    await join(bob, room1)
    since = (await sync(alice))["next_batch"]
    await send(alice, room1, "from alice")
    await send(bob, room1, "from bob")
    await send(alice, room2, "room two")
    only_room1 = await sync(alice, since=since, filter={"room": {"rooms": [room1]}})
    assert set(only_room1["rooms"]["join"]) == {room1}
    by_bob = await sync(alice, since=since, filter={"room": {"timeline": {"senders": [bob.user_id]}}})
    assert bodies(by_bob["rooms"]["join"][room1]["timeline"]["events"]) == ["from bob"]
    assert room2 not in by_bob["rooms"]["join"]
    no_msgs = await sync(alice, since=since, filter={"room": {"timeline": {"not_types": ["m.room.message"]}}})
    assert room1 not in no_msgs["rooms"]["join"] and room2 not in no_msgs["rooms"]["join"]


async def test_lazy_load_members(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    carol = await numbered_user(srv, "carol")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await join(carol, room)
    for i in range(5):
        await send(bob, room, f"b{i}")
    lazy = {"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}}
    body = await sync(alice, filter=lazy)
    state = body["rooms"]["join"][room]["state"]["events"]
    members = {e["state_key"] for e in state if e["type"] == "m.room.member"}
    assert members == {bob.user_id, alice.user_id}
    assert {"m.room.create", "m.room.power_levels"} <= {e["type"] for e in state}
    full = await sync(alice, filter={"room": {"timeline": {"limit": 3}}})
    full_members = {
        e["state_key"] for e in full["rooms"]["join"][room]["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert full_members == {alice.user_id, bob.user_id, carol.user_id}
    assert body["rooms"]["join"][room]["summary"]["m.joined_member_count"] == 3


async def test_account_data_filter(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    resp = await alice.put(f"/user/{alice.user_id}/account_data/org.example.a", {"a": 1})
    assert resp.status_code == 200, resp.text
    await alice.put(f"/user/{alice.user_id}/account_data/org.example.b", {"b": 2})
    body = await sync(alice)
    types = {e["type"] for e in body["account_data"]["events"]}
    assert {"org.example.a", "org.example.b", "m.push_rules"} <= types
    only_a = await sync(alice, filter={"account_data": {"types": ["org.example.a"]}})
    assert [e["type"] for e in only_a["account_data"]["events"]] == ["org.example.a"]
    since = body["next_batch"]
    await alice.put(f"/user/{alice.user_id}/account_data/org.example.b", {"b": 3})
    inc = await sync(alice, since=since)
    assert inc["account_data"]["events"] == [{"type": "org.example.b", "content": {"b": 3}}]
