"""Sliding sync extensions through a real server: to_device (MSC3885) with its `since`
acknowledgement, e2ee (MSC3884), account_data (MSC3959), receipts (MSC3960) and typing
(MSC3961), each scoped by its `lists` and `rooms`, and which of them wake a long-poll."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.e2ee_helpers import DeviceKeyring, upload
from tests.integration.sliding_sync_helpers import (
    all_rooms,
    sliding_sync,
    sliding_sync_response,
)
from tests.integration.sync_helpers import (
    User,
    create_room,
    join,
    numbered_user,
    send,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-ext")) as s:
        yield s


_n = itertools.count()
ENCRYPTION = "encryption"


async def _shared_room(owner: User, *others: User, **body: Any) -> str:
    room_id = await create_room(owner, preset="public_chat", **body)
    for other in others:
        await join(other, room_id)
    return room_id


async def _to_device(sender: User, to: User, content: dict[str, Any]) -> None:
    resp = await sender.put(f"/sendToDevice/m.test/t{next(_n)}",
                            {"messages": {to.user_id: {to.device_id: content}}})
    assert resp.status_code == 200, resp.text


def _ext(name: str, **config: Any) -> dict[str, Any]:
    return {"extensions": {name: {"enabled": True, **config}}}


async def _ext_sync(user: User, body: dict[str, Any], pos: str | None = None,
                    timeout: int | None = None, conn_id: str = ENCRYPTION) -> dict[str, Any]:
    return await sliding_sync(user, body, pos, timeout, conn_id=conn_id)


# --- to_device ---------------------------------------------------------------------------------


async def test_to_device_kept_until_since_acknowledges_it(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "tda"), await numbered_user(srv, "tdb")
    await _to_device(bob, alice, {"n": 1})
    await _to_device(bob, alice, {"n": 2})
    first = await _ext_sync(alice, _ext("to_device"))
    got = first["extensions"]["to_device"]
    assert [e["content"] for e in got["events"]] == [{"n": 1}, {"n": 2}]
    assert got["events"][0]["sender"] == bob.user_id and got["events"][0]["type"] == "m.test"
    # Not acknowledged (no since): the same messages again, as a retried request needs.
    again = await _ext_sync(alice, _ext("to_device"), pos=first["pos"])
    assert [e["content"] for e in again["extensions"]["to_device"]["events"]] == [{"n": 1}, {"n": 2}]
    acked = await _ext_sync(alice, _ext("to_device", since=got["next_batch"]), pos=again["pos"])
    assert acked["extensions"]["to_device"]["events"] == []
    # Acknowledged means deleted: even a request from the start finds nothing.
    fresh = await _ext_sync(alice, _ext("to_device"), conn_id="another")
    assert fresh["extensions"]["to_device"]["events"] == []
    await _to_device(bob, alice, {"n": 3})
    third = await _ext_sync(alice, _ext("to_device", since=got["next_batch"]), pos=acked["pos"])
    assert [e["content"] for e in third["extensions"]["to_device"]["events"]] == [{"n": 3}]
    assert int(third["extensions"]["to_device"]["next_batch"]) > int(got["next_batch"])


async def test_to_device_limit_pages_through_the_inbox(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "tla"), await numbered_user(srv, "tlb")
    for n in range(3):
        await _to_device(bob, alice, {"n": n})
    first = await _ext_sync(alice, _ext("to_device", limit=2))
    got = first["extensions"]["to_device"]
    assert [e["content"] for e in got["events"]] == [{"n": 0}, {"n": 1}]
    rest = await _ext_sync(alice, _ext("to_device", limit=2, since=got["next_batch"]),
                           pos=first["pos"])
    assert [e["content"] for e in rest["extensions"]["to_device"]["events"]] == [{"n": 2}]
    resp = await sliding_sync_response(alice, _ext("to_device", limit=0), conn_id=ENCRYPTION)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_to_device_wakes_a_long_poll(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "twa"), await numbered_user(srv, "twb")
    first = await _ext_sync(alice, _ext("to_device"))
    since = first["extensions"]["to_device"]["next_batch"]
    poll = asyncio.create_task(
        _ext_sync(alice, _ext("to_device", since=since), pos=first["pos"], timeout=10_000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    start = time.perf_counter()
    await _to_device(bob, alice, {"wake": True})
    answer = await poll
    assert time.perf_counter() - start < 2
    assert [e["content"] for e in answer["extensions"]["to_device"]["events"]] == [{"wake": True}]


async def test_to_device_since_that_is_no_position_is_400(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "tdx")
    resp = await sliding_sync_response(alice, _ext("to_device", since="not-a-batch"),
                                       conn_id=ENCRYPTION)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM", resp.text


# --- e2ee --------------------------------------------------------------------------------------


async def test_e2ee_key_counts_and_device_list_changes(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "eka"), await numbered_user(srv, "ekb")
    keys = DeviceKeyring.of(alice)
    await upload(alice, {"device_keys": keys.device_keys(), "one_time_keys": keys.one_time_keys(5),
                         "fallback_keys": keys.one_time_keys(1, fallback=True)})
    first = await _ext_sync(alice, _ext("e2ee"))
    e2ee = first["extensions"]["e2ee"]
    assert e2ee["device_one_time_keys_count"] == {"signed_curve25519": 5}
    assert e2ee["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert "device_lists" not in e2ee  # a first response has no changes to report

    room = await _shared_room(alice, bob)
    bob_keys = DeviceKeyring.of(bob)
    await upload(bob, {"device_keys": bob_keys.device_keys()})
    changed = await _ext_sync(alice, _ext("e2ee"), pos=first["pos"], timeout=5000)
    assert bob.user_id in changed["extensions"]["e2ee"]["device_lists"]["changed"]

    assert (await bob.post(f"/rooms/{room}/leave", {})).status_code == 200
    left = await _ext_sync(alice, _ext("e2ee"), pos=changed["pos"], timeout=5000)
    assert left["extensions"]["e2ee"]["device_lists"]["left"] == [bob.user_id]


async def test_e2ee_counts_alone_do_not_end_a_long_poll(srv: RunningServer) -> None:
    """The key counts go in every response, but only a device list change is news: a long-poll
    with nothing new waits out its timeout and still tells the counts."""
    alice = await numbered_user(srv, "ekc")
    first = await _ext_sync(alice, _ext("e2ee"))
    start = time.perf_counter()
    idle = await _ext_sync(alice, _ext("e2ee"), pos=first["pos"], timeout=600)
    assert time.perf_counter() - start >= 0.5
    assert idle["extensions"]["e2ee"]["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert idle["extensions"]["e2ee"]["device_lists"] == {"changed": [], "left": []}


# --- account_data ------------------------------------------------------------------------------


async def _put_account_data(user: User, data_type: str, content: dict[str, Any],
                            room_id: str | None = None) -> None:
    base = f"/user/{quote(user.user_id)}"
    path = f"{base}/rooms/{room_id}/account_data/{data_type}" if room_id else \
        f"{base}/account_data/{data_type}"
    assert (await user.put(path, content)).status_code == 200


def _types(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["type"] for e in events)


async def test_account_data_global_and_per_room_within_scope(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "ada")
    listed = await create_room(alice, name="listed")
    await _put_account_data(alice, "org.example.global", {"g": 1})
    await _put_account_data(alice, "m.tag", {"tags": {"u.work": {}}}, listed)

    first = await sliding_sync(alice, {**all_rooms(), **_ext("account_data")})
    data = first["extensions"]["account_data"]
    assert _types(data["global"]) == ["m.push_rules", "org.example.global"]
    assert {r: _types(evs) for r, evs in data["rooms"].items()} == {listed: ["m.tag"]}

    # Scoped to no list: a room seen only through the list gets no room data.
    other = await sliding_sync(alice, {**all_rooms(), **_ext("account_data", lists=[])},
                               conn_id="other")
    assert other["extensions"]["account_data"]["rooms"] == {}

    await _put_account_data(alice, "org.example.global", {"g": 2})
    await _put_account_data(alice, "m.tag", {"tags": {}}, listed)
    later = await sliding_sync(alice, {**all_rooms(), **_ext("account_data")},
                               pos=first["pos"], timeout=5000)
    data = later["extensions"]["account_data"]
    assert data["global"] == [{"type": "org.example.global", "content": {"g": 2}}]
    assert data["rooms"] == {listed: [{"type": "m.tag", "content": {"tags": {}}}]}


async def test_account_data_of_a_subscribed_room_only_when_rooms_names_it(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "adb")
    a = await create_room(alice, name="a")
    b = await create_room(alice, name="b")
    await _put_account_data(alice, "org.example.r", {"room": "a"}, a)
    await _put_account_data(alice, "org.example.r", {"room": "b"}, b)
    body = {"room_subscriptions": {a: {"timeline_limit": 1, "required_state": []}, b: {"timeline_limit": 1, "required_state": []}},
            **_ext("account_data", rooms=[b])}
    first = await sliding_sync(alice, body)
    assert first["extensions"]["account_data"]["rooms"] == {
        b: [{"type": "org.example.r", "content": {"room": "b"}}]}


# --- receipts and typing -----------------------------------------------------------------------


async def test_receipts_in_scope_wake_the_long_poll(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "rca"), await numbered_user(srv, "rcb")
    room = await _shared_room(alice, bob, name="receipts")
    event_id = await send(alice, room, "read me")
    assert (await bob.post(f"/rooms/{room}/receipt/m.read/{quote(event_id)}", {})).status_code == 200
    first = await sliding_sync(alice, {**all_rooms(), **_ext("receipts")})
    # The initial receipts are those on the timeline sent with the room.
    content = first["extensions"]["receipts"]["rooms"][room]["content"]
    assert list(content) == [event_id] and bob.user_id in content[event_id]["m.read"]

    newer = await send(alice, room, "and this")
    caught_up = await sliding_sync(alice, {**all_rooms(), **_ext("receipts")}, pos=first["pos"])
    poll = asyncio.create_task(sliding_sync(
        alice, {**all_rooms(), **_ext("receipts")}, pos=caught_up["pos"], timeout=10_000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    assert (await bob.post(f"/rooms/{room}/receipt/m.read/{quote(newer)}", {})).status_code == 200
    answer = await poll
    receipt = answer["extensions"]["receipts"]["rooms"][room]
    assert receipt["type"] == "m.receipt"
    assert list(receipt["content"]) == [newer]


async def test_receipts_and_typing_outside_scope_are_not_sent(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "sca"), await numbered_user(srv, "scb")
    room = await _shared_room(alice, bob, name="scoped")
    nothing = {"receipts": {"enabled": True, "lists": [], "rooms": []},
               "typing": {"enabled": True, "lists": ["no-such-list"]}}
    first = await sliding_sync(alice, {**all_rooms(), "extensions": nothing})
    event_id = await send(bob, room, "hello")
    caught_up = await sliding_sync(alice, {**all_rooms(), "extensions": nothing}, pos=first["pos"])
    assert (await bob.post(f"/rooms/{room}/receipt/m.read/{quote(event_id)}", {})).status_code == 200
    resp = await bob.put(f"/rooms/{room}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000})
    assert resp.status_code == 200
    quiet = await sliding_sync(alice, {**all_rooms(), "extensions": nothing},
                               pos=caught_up["pos"], timeout=500)
    assert quiet["extensions"]["receipts"] == {"rooms": {}}
    assert quiet["extensions"]["typing"] == {"rooms": {}}


async def test_scope_names_one_list_of_two(srv: RunningServer) -> None:
    """`lists: ["second"]` picks the rooms in that list's window only."""
    alice, bob = await numbered_user(srv, "lsa"), await numbered_user(srv, "lsb")
    older = await _shared_room(alice, bob, name="older")
    newer = await _shared_room(alice, bob, name="newer")
    await send(bob, older, "one")
    await send(bob, newer, "two")  # newer is first by recency, older second
    one = {"ranges": [[0, 0]], "timeline_limit": 1, "required_state": []}
    two = {"ranges": [[1, 1]], "timeline_limit": 1, "required_state": []}
    body = {"lists": {"first": one, "second": two},
            "extensions": {"typing": {"enabled": True, "lists": ["second"], "rooms": []}}}
    first = await sliding_sync(alice, body)
    assert set(first["rooms"]) == {newer, older}
    for room in (older, newer):
        resp = await bob.put(f"/rooms/{room}/typing/{quote(bob.user_id)}",
                             {"typing": True, "timeout": 30000})
        assert resp.status_code == 200
    later = await sliding_sync(alice, body, pos=first["pos"], timeout=5000)
    assert list(later["extensions"]["typing"]["rooms"]) == [older]


async def test_typing_in_a_subscribed_room(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "tya"), await numbered_user(srv, "tyb")
    room = await _shared_room(alice, bob, name="typing")
    body = {"room_subscriptions": {room: {"timeline_limit": 1, "required_state": []}}, **_ext("typing")}
    first = await sliding_sync(alice, body)
    assert first["extensions"]["typing"] == {"rooms": {}}
    poll = asyncio.create_task(sliding_sync(alice, body, pos=first["pos"], timeout=10_000))
    await asyncio.sleep(0.3)
    resp = await bob.put(f"/rooms/{room}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000})
    assert resp.status_code == 200
    answer = await poll
    assert answer["extensions"]["typing"]["rooms"][room] == {
        "type": "m.typing", "content": {"user_ids": [bob.user_id]}}
    resp = await bob.put(f"/rooms/{room}/typing/{quote(bob.user_id)}", {"typing": False})
    stopped = await sliding_sync(alice, body, pos=answer["pos"], timeout=10_000)
    assert stopped["extensions"]["typing"]["rooms"][room]["content"] == {"user_ids": []}


async def test_typing_of_a_room_the_user_left_is_not_sent(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "tla"), await numbered_user(srv, "tlb")
    room = await _shared_room(bob, alice, name="left")
    assert (await alice.post(f"/rooms/{room}/leave", {})).status_code == 200
    body = {"room_subscriptions": {room: {"timeline_limit": 1, "required_state": []}}, **_ext("typing")}
    first = await sliding_sync(alice, body)
    resp = await bob.put(f"/rooms/{room}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000})
    assert resp.status_code == 200
    later = await sliding_sync(alice, body, pos=first["pos"], timeout=500)
    assert later["extensions"]["typing"] == {"rooms": {}}
