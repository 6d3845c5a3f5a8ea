"""/messages, /context, /timestamp_to_event and history visibility over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import (
    User,
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
    async with running_server(tmp_path_factory.mktemp("messages")) as s:
        yield s


async def _all_messages(user: User, room: str, **params) -> list[str]:
    seen: list[str] = []
    token = None
    while True:
        args = {"dir": "b", "limit": 4, **params}
        if token is not None:
            args["from"] = token
        resp = await user.get(f"/rooms/{room}/messages", **args)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seen = list(reversed(bodies(page["chunk"]))) + seen
        if "end" not in page:
            return seen
        token = page["end"]


async def _set_visibility(user: User, room: str, value: str) -> None:
    resp = await user.put(
        f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": value}
    )
    assert resp.status_code == 200, resp.text


async def test_backwards_and_forwards_pagination(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    for i in range(10):
        await send(alice, room, f"p{i}")
    assert await _all_messages(alice, room) == [f"p{i}" for i in range(10)]
    # Forwards from the start in pages, then from a sync token backwards.
    resp = await alice.get(f"/rooms/{room}/messages", dir="f", limit=100)
    page = resp.json()
    assert_matches_operation(
        "client-server/message_pagination.yaml", "/rooms/{roomId}/messages", "get", 200, page
    )
    assert bodies(page["chunk"]) == [f"p{i}" for i in range(10)]
    assert page["chunk"][0]["type"] == "m.room.create"
    first = await alice.get(f"/rooms/{room}/messages", dir="f", limit=3)
    second = await alice.get(
        f"/rooms/{room}/messages", dir="f", limit=100, **{"from": first.json()["end"]}
    )
    ids = [e["event_id"] for e in first.json()["chunk"] + second.json()["chunk"]]
    assert ids == [e["event_id"] for e in page["chunk"]]
    next_batch = (await sync(alice))["next_batch"]
    resp = await alice.get(f"/rooms/{room}/messages", dir="b", limit=2, **{"from": next_batch})
    assert bodies(resp.json()["chunk"]) == ["p9", "p8"]
    # `to` stops the page.
    to = first.json()["end"]
    resp = await alice.get(f"/rooms/{room}/messages", dir="b", limit=100, to=to)
    assert len(resp.json()["chunk"]) == len(page["chunk"]) - 3
    # Forwards, the live end answers an empty chunk without `end` (as Synapse); the token of
    # the last page still picks up later events.
    resp = await alice.get(f"/rooms/{room}/messages", dir="f", **{"from": page["end"]})
    assert resp.json()["chunk"] == [] and "end" not in resp.json()
    await send(alice, room, "p10")
    resp = await alice.get(f"/rooms/{room}/messages", dir="f", **{"from": page["end"]})
    assert bodies(resp.json()["chunk"]) == ["p10"]


async def test_end_comes_with_every_nonempty_chunk(srv: RunningServer) -> None:
    """SyTest "GET /rooms/:room_id/messages returns a message": a short last page still has
    `end`; the call after it answers an empty chunk and no `end`."""
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    await send(alice, room, "only")
    resp = await alice.get(f"/rooms/{room}/messages", dir="b", limit=100)
    page = resp.json()
    assert bodies(page["chunk"]) == ["only"] and "end" in page
    resp = await alice.get(f"/rooms/{room}/messages", dir="b", **{"from": page["end"]})
    assert resp.json()["chunk"] == [] and "end" not in resp.json()
    # A full page the filter empties is no end: the next matching event is still found.
    for i in range(5):
        await send(alice, room, f"noise{i}")
    resp = await alice.get(
        f"/rooms/{room}/messages", dir="b", limit=2, filter='{"types": ["m.room.create"]}'
    )
    page = resp.json()
    assert [e["type"] for e in page["chunk"]] == ["m.room.create"] and "end" in page


async def test_messages_filter_and_lazy_members(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await send(bob, room, "bob says")
    await send(alice, room, "alice says")
    resp = await alice.get(
        f"/rooms/{room}/messages", dir="b", limit=2,
        filter='{"senders": ["%s"], "lazy_load_members": true}' % bob.user_id,
    )
    body = resp.json()
    assert bodies(body["chunk"]) == ["bob says"]
    assert [(e["type"], e["state_key"]) for e in body["state"]] == [("m.room.member", bob.user_id)]


async def test_errors(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    eve = await numbered_user(srv, "eve")
    room = await create_room(alice)
    resp = await eve.get(f"/rooms/{room}/messages", dir="b")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await alice.get(f"/rooms/{room}/messages", dir="x")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
    # `dir` is required by the spec (Synapse would default it to "f").
    resp = await alice.get(f"/rooms/{room}/messages")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_MISSING_PARAM"
    assert "dir" in resp.json()["error"]
    resp = await alice.get(f"/rooms/{room}/messages", dir="b", **{"from": "garbage"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await alice.get(f"/rooms/{room}/context/$nope")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"


async def test_joined_visibility_hides_history_but_shared_does_not(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    carol = await numbered_user(srv, "carol")
    joined_room = await create_room(alice, preset="public_chat")
    await _set_visibility(alice, joined_room, "joined")
    await send(alice, joined_room, "secret before")
    shared_room = await create_room(alice, preset="public_chat")
    await _set_visibility(alice, shared_room, "shared")
    await send(alice, shared_room, "open before")
    await join(bob, joined_room)
    await join(carol, shared_room)
    await send(alice, joined_room, "after bob")
    await send(alice, shared_room, "after carol")
    assert await _all_messages(bob, joined_room) == ["after bob"]
    assert await _all_messages(carol, shared_room) == ["open before", "after carol"]
    # The initial sync of a joined-visibility room holds nothing from before the join either.
    timeline = (await sync(bob))["rooms"]["join"][joined_room]["timeline"]["events"]
    assert bodies(timeline) == ["after bob"]
    # Former members keep what they could see, and nothing after leaving.
    resp = await carol.post(f"/rooms/{shared_room}/leave", {})
    assert resp.status_code == 200
    await send(alice, shared_room, "after carol left")
    assert await _all_messages(carol, shared_room) == ["open before", "after carol"]


async def test_context(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    ids = [await send(alice, room, f"c{i}") for i in range(9)]
    resp = await alice.get(f"/rooms/{room}/context/{ids[4]}", limit=4)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_matches_operation(
        "client-server/event_context.yaml", "/rooms/{roomId}/context/{eventId}", "get", 200, body
    )
    assert body["event"]["event_id"] == ids[4]
    assert [e["event_id"] for e in body["events_before"]] == [ids[3], ids[2]]
    assert [e["event_id"] for e in body["events_after"]] == [ids[5], ids[6]]
    assert any(e["type"] == "m.room.create" for e in body["state"])
    # start/end continue the context without gaps.
    before = await alice.get(f"/rooms/{room}/messages", dir="b", limit=1, **{"from": body["start"]})
    assert [e["event_id"] for e in before.json()["chunk"]] == [ids[1]]
    after = await alice.get(f"/rooms/{room}/messages", dir="f", limit=1, **{"from": body["end"]})
    assert [e["event_id"] for e in after.json()["chunk"]] == [ids[7]]


async def test_timestamp_to_event(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    first = await send(alice, room, "t0")
    ts = int(time.time() * 1000) + 5
    time.sleep(0.02)
    second = await send(alice, room, "t1")
    path = f"/_matrix/client/v1/rooms/{room}/timestamp_to_event"
    resp = await alice.client.get(path, params={"ts": ts, "dir": "f"}, headers=alice.headers)
    assert resp.status_code == 200, resp.text
    assert_matches_operation(
        "client-server/room_event_by_timestamp.yaml", "/rooms/{roomId}/timestamp_to_event",
        "get", 200, resp.json(),
    )
    assert resp.json()["event_id"] == second
    resp = await alice.client.get(path, params={"ts": ts, "dir": "b"}, headers=alice.headers)
    assert resp.json()["event_id"] == first
    resp = await alice.client.get(path, params={"ts": 1, "dir": "b"}, headers=alice.headers)
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"


async def test_redacted_events_served_redacted(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    since = (await sync(alice))["next_batch"]
    target = await send(alice, room, "oops")
    resp = await alice.put(f"/rooms/{room}/redact/{target}/r1", {"reason": "typo"})
    assert resp.status_code == 200, resp.text
    timeline = (await sync(alice, since=since))["rooms"]["join"][room]["timeline"]["events"]
    redacted = next(e for e in timeline if e["event_id"] == target)
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"]["type"] == "m.room.redaction"
    assert redacted["unsigned"]["redacted_by"] == resp.json()["event_id"]
    page = (await alice.get(f"/rooms/{room}/messages", dir="b", limit=5)).json()
    again = next(e for e in page["chunk"] if e["event_id"] == target)
    assert again["content"] == {} and "redacted_because" in again["unsigned"]
