"""Simplified sliding sync (MSC4186) through a real server, with requests shaped as Element X
(matrix-rust-sdk) sends them: the room list, its order and counts, each room's fields,
incremental delivery and its latency, and the request errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sliding_sync_helpers import (
    all_rooms,
    bodies,
    sliding_sync,
    sliding_sync_response,
)
from tests.integration.sync_helpers import (
    create_room,
    join,
    numbered_user,
    send,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-sync")) as s:
        yield s


def _state_keys(room: dict) -> list[tuple[str, str]]:
    return sorted((e["type"], e["state_key"]) for e in room.get("required_state", []))


async def test_initial_room_list_as_element_x_asks(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    older = await create_room(
        alice, name="Older", preset="public_chat", topic="about old"
    )
    newer = await create_room(alice, name="Newer", preset="public_chat")
    dm = await create_room(
        alice, preset="trusted_private_chat", invite=[bob.user_id], is_direct=True
    )
    for room in (older, newer, dm):
        await join(bob, room)
    await send(alice, older, "old message")
    await send(alice, newer, "new message")
    body = await sliding_sync(bob, all_rooms())
    assert body["pos"]
    assert body["lists"] == {"all_rooms": {"count": 3}}
    assert body["extensions"] == {}
    rooms = body["rooms"]
    assert set(rooms) == {older, newer, dm}
    new = rooms[newer]
    assert new["initial"] is True
    assert new["membership"] == "join"
    assert new["lists"] == ["all_rooms"]
    assert new["name"] == "Newer"
    assert "heroes" not in new  # named rooms need none
    assert new["joined_count"] == 2 and new["invited_count"] == 0
    assert new["notification_count"] == 1 and new["highlight_count"] == 0
    assert bodies(new) == ["new message"]
    assert new["limited"] is True  # timeline_limit 1 of many events
    assert new["num_live"] == 0  # nothing is live on a connection's first response
    assert new["prev_batch"].startswith("t")
    # Only the asked-for state: lazy members are the timeline's sender and $ME the user.
    assert _state_keys(new) == sorted(
        [
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.name", ""),
            ("m.room.power_levels", ""),
            ("m.room.member", alice.user_id),
            ("m.room.member", bob.user_id),
        ]
    )
    assert ("m.room.topic", "") in _state_keys(rooms[older])
    # The unnamed DM has heroes (the other member, with their profile) instead of a name.
    assert "name" not in rooms[dm]
    assert rooms[dm]["heroes"] == [
        {"user_id": alice.user_id, "displayname": alice.user_id[1:].split(":")[0]}
    ]
    # Newest activity first: bump_stamp orders them as the list does.
    assert rooms[newer]["bump_stamp"] > rooms[older]["bump_stamp"]


async def test_ranges_pick_the_top_rooms_and_a_range_past_the_end_stops_at_it(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    made = [await create_room(alice, name=f"r{i}") for i in range(4)]
    for i, room in enumerate(made):
        await send(alice, room, f"m{i}")
    top = await sliding_sync(alice, all_rooms(end=1))
    assert top["lists"]["all_rooms"]["count"] == 4
    assert set(top["rooms"]) == {made[3], made[2]}
    past = await sliding_sync(alice, all_rooms(end=99), pos=top["pos"])
    assert past["lists"]["all_rooms"]["count"] == 4
    # Growing the window sends only the rooms not sent yet.
    assert set(past["rooms"]) == {made[1], made[0]}
    assert all(r["initial"] for r in past["rooms"].values())
    body = {
        "lists": {
            "all_rooms": {
                **all_rooms()["lists"]["all_rooms"],
                "ranges": [[2, 2], [7, 9]],
            }
        }
    }
    fresh = await sliding_sync(alice, body)
    assert set(fresh["rooms"]) == {made[1]}


async def test_message_from_another_user_arrives_within_100_ms(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    first = await sliding_sync(bob, all_rooms())
    # Let the connection settle: the next request long-polls with nothing new.
    settled = await sliding_sync(bob, all_rooms(), pos=first["pos"], timeout=0)
    waiting = asyncio.create_task(
        sliding_sync(bob, all_rooms(), pos=settled["pos"], timeout=30_000)
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()
    delays = []
    for i in range(5):
        sent_at = time.monotonic()
        await send(alice, room, f"ping {i}")
        body = await waiting
        delays.append(time.monotonic() - sent_at)
        assert bodies(body["rooms"][room]) == [f"ping {i}"]
        assert body["rooms"][room]["num_live"] == 1
        assert "initial" not in body["rooms"][room]
        waiting = asyncio.create_task(
            sliding_sync(bob, all_rooms(), pos=body["pos"], timeout=30_000)
        )
        await asyncio.sleep(0.05)
    waiting.cancel()
    print(f"sliding sync delivery delays (ms): {[round(d * 1000, 1) for d in delays]}")
    # From the send's 200 to the waiting request's answer, every time.
    assert max(delays) < 0.1, delays


async def test_long_poll_times_out_with_no_rooms_and_a_usable_pos(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    await create_room(alice)
    first = await sliding_sync(alice, all_rooms())
    started = time.monotonic()
    idle = await sliding_sync(alice, all_rooms(), pos=first["pos"], timeout=300)
    assert time.monotonic() - started >= 0.29
    assert idle["rooms"] == {}
    assert idle["lists"] == {"all_rooms": {"count": 1}}
    again = await sliding_sync(alice, all_rooms(), pos=idle["pos"], timeout=0)
    assert again["rooms"] == {}


@pytest.mark.parametrize(
    ("body", "params", "errcode", "names"),
    [
        (
            {"lists": {"a": {"ranges": [[0, 1]], "required_state": []}}},
            {},
            "M_BAD_JSON",
            "lists.a.timeline_limit",
        ),
        (
            {"lists": {"a": {"timeline_limit": -1, "required_state": []}}},
            {},
            "M_INVALID_PARAM",
            "lists.a.timeline_limit",
        ),
        (
            {"lists": {"a": {"timeline_limit": 1}}},
            {},
            "M_BAD_JSON",
            "lists.a.required_state",
        ),
        (
            {
                "lists": {
                    "a": {"timeline_limit": 1, "required_state": [["m.room.name"]]}
                }
            },
            {},
            "M_BAD_JSON",
            "lists.a.required_state[0]",
        ),
        (
            {
                "lists": {
                    "a": {"timeline_limit": 1, "required_state": [], "ranges": [[3, 1]]}
                }
            },
            {},
            "M_INVALID_PARAM",
            "lists.a.ranges[0]",
        ),
        (
            {
                "lists": {
                    "a": {
                        "timeline_limit": 1,
                        "required_state": [],
                        "ranges": [[-1, 1]],
                    }
                }
            },
            {},
            "M_INVALID_PARAM",
            "lists.a.ranges[0]",
        ),
        (
            {
                "lists": {
                    "a": {"timeline_limit": 1, "required_state": [], "ranges": [0, 1]}
                }
            },
            {},
            "M_BAD_JSON",
            "lists.a.ranges[0]",
        ),
        (
            {
                "lists": {
                    "a": {
                        "timeline_limit": 1,
                        "required_state": [],
                        "filters": {"is_dm": "yes"},
                    }
                }
            },
            {},
            "M_BAD_JSON",
            "lists.a.filters.is_dm",
        ),
        (
            {
                "lists": {
                    "a": {
                        "timeline_limit": 1,
                        "required_state": [],
                        "filters": {"room_types": [1]},
                    }
                }
            },
            {},
            "M_BAD_JSON",
            "lists.a.filters.room_types",
        ),
        ({"lists": []}, {}, "M_BAD_JSON", "lists"),
        (
            {"lists": {"x" * 65: {"timeline_limit": 1, "required_state": []}}},
            {},
            "M_INVALID_PARAM",
            "lists.",
        ),
        (
            {
                "room_subscriptions": {
                    "not-a-room": {"timeline_limit": 1, "required_state": []}
                }
            },
            {},
            "M_INVALID_PARAM",
            "room_subscriptions.not-a-room",
        ),
        (
            {
                "room_subscriptions": {
                    "!r:x": {"timeline_limit": "1", "required_state": []}
                }
            },
            {},
            "M_BAD_JSON",
            "room_subscriptions.!r:x.timeline_limit",
        ),
        ({"conn_id": 5}, {}, "M_BAD_JSON", "conn_id"),
        ({}, {"timeout": "soon"}, "M_INVALID_PARAM", "timeout"),
        ({}, {"timeout": "-5"}, "M_INVALID_PARAM", "timeout"),
        ({}, {"set_presence": "busy"}, "M_INVALID_PARAM", "set_presence"),
    ],
)
async def test_bad_requests_name_the_field(
    srv: RunningServer, body: dict, params: dict, errcode: str, names: str
) -> None:
    alice = await numbered_user(srv, "alice")
    resp = await alice.client.post(
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        params=params,
        json=body,
        headers=alice.headers,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == errcode
    assert names in resp.json()["error"]


async def test_not_json_and_no_token(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    url = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
    resp = await alice.client.post(url, content=b"{nope", headers=alice.headers)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
    resp = await alice.client.post(url, json={})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_unknown_or_superseded_pos_is_m_unknown_pos(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    for pos in ("garbage", "999999/s1_0_0_0_0_0_0", "1/s1__2"):
        resp = await sliding_sync_response(alice, all_rooms(), pos=pos)
        assert resp.status_code == 400
        assert resp.json()["errcode"] == "M_UNKNOWN_POS"
    first = await sliding_sync(alice, all_rooms())
    await send(alice, room, "one")
    second = await sliding_sync(alice, all_rooms(), pos=first["pos"])
    # Retrying the same pos (a lost response) is fine and gives the same rooms...
    retry = await sliding_sync(alice, all_rooms(), pos=first["pos"])
    assert bodies(retry["rooms"][room]) == bodies(second["rooms"][room]) == ["one"]
    third = await sliding_sync(alice, all_rooms(), pos=retry["pos"])
    assert third["rooms"] == {}
    # ...but once a newer pos was used, the older one is gone.
    resp = await sliding_sync_response(alice, all_rooms(), pos=first["pos"])
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN_POS"
    # A pos is bound to its conn_id.
    resp = await sliding_sync_response(
        alice, all_rooms(), pos=third["pos"], conn_id="other"
    )
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN_POS"
    # Starting over without pos replaces the connection: its old pos is then unknown.
    await sliding_sync(alice, all_rooms())
    resp = await sliding_sync_response(alice, all_rooms(), pos=third["pos"])
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN_POS"


async def test_versions_advertises_simplified_sliding_sync(srv: RunningServer) -> None:
    resp = await srv.client.get("/_matrix/client/versions")
    assert resp.json()["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_messages_accepts_a_pos_as_from(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    await send(alice, room, "one")
    await send(alice, room, "two")
    body = await sliding_sync(alice, all_rooms())
    resp = await alice.get(
        f"/rooms/{room}/messages", dir="b", limit=2, **{"from": body["pos"]}
    )
    assert resp.status_code == 200, resp.text
    chunk = resp.json()["chunk"]
    assert [e["content"].get("body") for e in chunk] == ["two", "one"]


async def test_a_device_opening_many_connections_loses_the_oldest(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    first = await sliding_sync(alice, all_rooms(), conn_id="conn-0")
    for i in range(1, 21):
        await sliding_sync(alice, all_rooms(), conn_id=f"conn-{i}")
    resp = await sliding_sync_response(
        alice, all_rooms(), pos=first["pos"], conn_id="conn-0"
    )
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN_POS"


async def test_an_abandoned_long_poll_does_not_undo_the_request_that_replaced_it(
    srv: RunningServer,
) -> None:
    """A client changes its request while a long-poll is in flight (it cancels it and sends
    the same pos again). Should the old one still answer, it must not save: the pos the new
    one handed out stays good."""
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    first = await sliding_sync(alice, all_rooms())
    old = asyncio.create_task(
        sliding_sync_response(alice, all_rooms(), pos=first["pos"], timeout=10_000)
    )
    await asyncio.sleep(0.2)
    new = await sliding_sync(alice, all_rooms(end=5), pos=first["pos"], timeout=0)
    await send(alice, room, "wakes the old one")
    resp = await old
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN_POS"
    after = await sliding_sync(alice, all_rooms(end=5), pos=new["pos"])
    assert bodies(after["rooms"][room]) == ["wakes the old one"]


async def test_set_presence_and_txn_id(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    body = {"txn_id": "txn-1", **all_rooms()}
    resp = await sliding_sync_response(alice, body)
    assert resp.status_code == 200 and resp.json()["txn_id"] == "txn-1"
    presence = await alice.get(f"/presence/{alice.user_id}/status")
    assert presence.json()["presence"] == "online"  # polling marks the user online
    bob = await numbered_user(srv, "bob")
    resp = await bob.client.post(
        "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        params={"set_presence": "offline"},
        json=all_rooms(),
        headers=bob.headers,
    )
    assert resp.status_code == 200 and "txn_id" not in resp.json()
    presence = await bob.get(f"/presence/{bob.user_id}/status")
    assert presence.json()["presence"] == "offline"


async def test_a_single_range_works_as_ranges(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    rooms = [await create_room(alice) for _ in range(3)]
    for i, room in enumerate(rooms):
        await send(alice, room, str(i))
    body = {
        "lists": {"l": {"range": [0, 1], "timeline_limit": 1, "required_state": []}}
    }
    resp = await sliding_sync(alice, body)
    assert set(resp["rooms"]) == {rooms[2], rooms[1]}
    assert resp["lists"]["l"]["count"] == 3


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every place in a JSON body: object keys and list indexes, depth first."""
    out: list[tuple[object, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _replaced(body: dict, path: tuple[object, ...], new: object) -> dict:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


async def test_any_wrong_json_type_anywhere_is_a_matrix_error_not_a_crash(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    body = {
        **all_rooms(
            filters={"is_dm": False, "not_room_types": ["m.space"], "tags": ["t"]}
        ),
        "room_subscriptions": {
            room: {"timeline_limit": 5, "required_state": [["m.room.member", "$LAZY"]]}
        },
        "txn_id": "t",
    }
    url = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
    for path in _paths(body):
        for wrong in (None, [], {}, 7, -1, "x", True, [[1, 2]]):
            resp = await alice.client.post(
                url, json=_replaced(body, path, wrong), headers=alice.headers
            )
            assert resp.status_code < 500, (path, wrong, resp.text)
            if resp.status_code != 200:
                assert resp.status_code == 400 and resp.json()["errcode"].startswith(
                    "M_"
                ), (
                    path,
                    wrong,
                    resp.text,
                )
