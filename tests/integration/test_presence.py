"""Presence over HTTP (presence.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.sync_helpers import create_room, join, new_user, send, sync
from tests.integration.user_data_helpers import World, open_world, q
from tests.spec_schema import assert_matches_operation, assert_matches_schema


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("presence")):
        yield w


def _path(world: World, who: str) -> str:
    return f"/presence/{q(world.ids[who])}/status"


async def test_set_and_get(world: World) -> None:
    notifier = world.services.notifier
    with notifier.listen(world.ids["bob"]) as bob, notifier.listen(world.ids["carol"]) as carol:
        resp = await world.call("alice", "PUT", _path(world, "alice"), {"presence": "online", "status_msg": "here"})
        assert resp.status_code == 200 and resp.json() == {}
        assert await bob.wait(1) and not await carol.wait(0)
    assert_matches_operation("client-server/presence.yaml", "/presence/{userId}/status", "put", 200, resp.json())
    for who in ("alice", "bob"):
        resp = await world.call(who, "GET", _path(world, "alice"))
        assert resp.status_code == 200
        body = resp.json()
        assert body["presence"] == "online" and body["status_msg"] == "here" and body["currently_active"] is True
        assert 0 <= body["last_active_ago"] < 10_000
        assert_matches_operation("client-server/presence.yaml", "/presence/{userId}/status", "get", 200, body)
    events = await world.services.presence.presence_since([world.ids["alice"]], 0)
    assert [e["content"]["presence"] for e in events] == ["online"]
    assert_matches_schema("event-schemas/schema/m.presence.yaml", events[0])


async def test_never_set_is_offline(world: World) -> None:
    resp = await world.call("alice", "GET", _path(world, "bob"))
    assert resp.status_code == 200 and resp.json() == {"presence": "offline"}


@pytest.mark.parametrize(
    ("who", "method", "target", "body", "status", "errcode"),
    [
        ("carol", "GET", "alice", None, 403, "M_FORBIDDEN"),  # shares no room with alice
        ("bob", "PUT", "alice", {"presence": "online"}, 403, "M_FORBIDDEN"),
        ("alice", "PUT", "alice", {"presence": "busy"}, 400, "M_INVALID_PARAM"),
        ("alice", "PUT", "alice", {"status_msg": "x"}, 400, "M_MISSING_PARAM"),
        ("alice", "PUT", "alice", {"presence": "online", "status_msg": 3}, 400, "M_BAD_JSON"),
    ],
)
async def test_presence_errors(world: World, who: str, method: str, target: str, body: dict | None, status: int, errcode: str) -> None:
    resp = await world.call(who, method, _path(world, target), body)
    assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == errcode


async def test_unavailable_clears_status(world: World) -> None:
    assert (await world.call("alice", "PUT", _path(world, "alice"), {"presence": "unavailable"})).status_code == 200
    body = (await world.call("alice", "GET", _path(world, "alice"))).json()
    assert body["presence"] == "unavailable" and "status_msg" not in body and body["currently_active"] is False


async def test_receipt_counts_as_activity(world: World) -> None:
    assert (await world.call("bob", "PUT", _path(world, "bob"), {"presence": "unavailable"})).status_code == 200
    event_id = await world.send("alice")
    resp = await world.call("bob", "POST", f"/rooms/{q(world.room_id)}/receipt/m.read/{q(event_id)}", {})
    assert resp.status_code == 200
    assert (await world.call("bob", "GET", _path(world, "bob"))).json()["presence"] == "online"


def _senders(body: dict[str, Any]) -> list[str]:
    return [e["sender"] for e in body["presence"]["events"]]


async def test_own_presence_without_rooms(world: World) -> None:
    dave = await new_user(world.client, "presence-dave")
    assert _senders(await sync(dave)) == [dave.user_id]  # a sync marks dave online


async def test_newly_sharing_a_room_brings_current_presence(world: World) -> None:
    """Presence that last changed before `since` still comes once a room is shared: to the
    joiner for the room's members, and to the members for the joiner."""
    erin, frank = await new_user(world.client, "presence-erin"), await new_user(world.client, "presence-frank")
    room = await create_room(erin, preset="public_chat")
    erin_pos = (await sync(erin))["next_batch"]
    frank_pos = (await sync(frank))["next_batch"]
    await send(erin, room, "settle")  # nothing about presence changes from here on
    erin_pos = (await sync(erin, erin_pos))["next_batch"]
    await join(frank, room)
    to_frank, to_erin = await sync(frank, frank_pos), await sync(erin, erin_pos)
    assert erin.user_id in _senders(to_frank) and frank.user_id in _senders(to_erin)
    assert_matches_schema("event-schemas/schema/m.presence.yaml", to_frank["presence"]["events"][0])
    # Only once.
    assert _senders(await sync(frank, to_frank["next_batch"])) == []
    assert _senders(await sync(erin, to_erin["next_batch"])) == []



async def test_newcomer_presence_includes_offline(world: World) -> None:
    """A member who never went online (syncs with set_presence=offline) is still announced to
    the room's members once, as offline."""
    gina, hal = await new_user(world.client, "presence-gina"), await new_user(world.client, "presence-hal")
    room = await create_room(gina, preset="public_chat")
    pos = (await sync(gina))["next_batch"]
    await join(hal, room)
    body = await sync(gina, pos)
    assert {"type": "m.presence", "sender": hal.user_id, "content": {"presence": "offline"}} in body["presence"]["events"]
    assert_matches_schema("event-schemas/schema/m.presence.yaml", body["presence"]["events"][-1])
