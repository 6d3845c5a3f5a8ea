"""Simplified sliding sync (MSC4186) as a room moves out of a list's window and back in (the
client scrolls: its ranges change), checked against what Synapse does on the same steps:

- room account data (MSC3959) and receipts (MSC3960) that changed while the room was out of
  every window arrive when it is back, and what it already had is not sent again; a room the
  connection never sent gets all its account data and the receipts on its timeline;
- the list's order is by activity (any event, MSC4186 §Activity ordering), so a room the user
  joins comes into a window at the top at once;
- a count that changes with nothing else to send (a room the connection never sent is left)
  ends a long-poll with the new count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sliding_sync_helpers import all_rooms, bodies, sliding_sync
from tests.integration.sync_helpers import (
    User,
    create_room,
    join,
    numbered_user,
    send,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-sync-window")) as s:
        yield s


EXTENSIONS = {
    "extensions": {"account_data": {"enabled": True}, "receipts": {"enabled": True}}
}
# A long-poll that has news answers at once; this bounds "at once" loosely enough for a loaded
# 2-core machine, and far below the poll's own timeout.
POLL_TIMEOUT_MS = 30_000
ANSWERED_WITHIN_S = 10.0


def _window(end: int) -> dict[str, Any]:
    return {**all_rooms(end=end, required_state=[["m.room.name", ""]]), **EXTENSIONS}


async def _three_rooms(alice: User, bob: User) -> tuple[list[str], list[str]]:
    """Rooms old, middle and new (by activity, newest last), bob in each, one message of
    alice's each; (rooms, those messages' event IDs)."""
    rooms, events = [], []
    for name in ("old", "middle", "new"):
        room = await create_room(alice, name=name, preset="public_chat")
        await join(bob, room)
        rooms.append(room)
    for room in rooms:
        events.append(await send(alice, room, f"in {room}"))
    return rooms, events


async def _room_data(
    user: User, room_id: str, data_type: str, content: dict[str, Any]
) -> None:
    path = f"/user/{quote(user.user_id)}/rooms/{room_id}/account_data/{data_type}"
    resp = await user.put(path, content)
    assert resp.status_code == 200, resp.text


async def _read(user: User, room_id: str, event_id: str) -> None:
    resp = await user.post(f"/rooms/{room_id}/receipt/m.read/{quote(event_id)}", {})
    assert resp.status_code == 200, resp.text


def _data(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    events = body["extensions"]["account_data"]["rooms"].get(room_id, [])
    return {e["type"]: e["content"] for e in events}


def _readers(body: dict[str, Any], room_id: str) -> dict[str, set[str]]:
    """event ID -> who read it, in the response's receipts for the room."""
    receipt = body["extensions"]["receipts"]["rooms"].get(room_id)
    if receipt is None:
        return {}
    return {
        event_id: set(by_type.get("m.read", {}))
        for event_id, by_type in receipt["content"].items()
    }


async def test_data_changed_out_of_the_window_arrives_when_the_room_is_back(
    srv: RunningServer,
) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    (old, middle, new), events = await _three_rooms(alice, bob)
    await _room_data(alice, old, "org.example.kept", {"v": 1})
    everything = await sliding_sync(alice, _window(2))
    assert set(everything["rooms"]) == {old, middle, new}
    assert _data(everything, old) == {"org.example.kept": {"v": 1}}
    # The client scrolls to the top: old and middle leave the window.
    top = await sliding_sync(alice, _window(0), pos=everything["pos"])
    assert top["rooms"] == {}
    await _room_data(alice, old, "org.example.changed", {"v": 2})
    await _read(bob, old, events[0])
    await _read(bob, new, events[2])
    # This response covers the changes; only the room in the window gets its receipt.
    out = await sliding_sync(alice, _window(0), pos=top["pos"])
    assert _readers(out, new) == {events[2]: {bob.user_id}}
    assert _data(out, old) == {} and _readers(out, old) == {}
    # Scrolled back: old is no news for its timeline, but it is owed the changes, and only
    # those (what it had before it left is not sent again).
    back = await sliding_sync(alice, _window(2), pos=out["pos"])
    assert back["rooms"] == {}
    assert _data(back, old) == {"org.example.changed": {"v": 2}}
    assert _readers(back, old) == {events[0]: {bob.user_id}}
    assert _data(back, middle) == {} and _readers(back, middle) == {}
    assert _readers(back, new) == {}  # already sent while it was in the window
    # Now the client holds them: nothing is owed any more.
    again = await sliding_sync(alice, _window(2), pos=back["pos"], timeout=0)
    assert again["extensions"]["account_data"]["rooms"] == {}
    assert again["extensions"]["receipts"]["rooms"] == {}


async def test_changes_while_out_of_the_window_wake_the_long_poll_that_brings_it_back(
    srv: RunningServer,
) -> None:
    """The owed data is news: a long-poll whose ranges bring the room back answers at once."""
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    (old, _, _), events = await _three_rooms(alice, bob)
    everything = await sliding_sync(alice, _window(2))
    top = await sliding_sync(alice, _window(0), pos=everything["pos"])
    await _read(bob, old, events[0])
    out = await sliding_sync(alice, _window(0), pos=top["pos"])
    start = time.perf_counter()
    back = await sliding_sync(
        alice, _window(2), pos=out["pos"], timeout=POLL_TIMEOUT_MS
    )
    assert time.perf_counter() - start < ANSWERED_WITHIN_S
    assert _readers(back, old) == {events[0]: {bob.user_id}}


async def test_a_room_never_sent_gets_all_its_data_and_its_timeline_receipts(
    srv: RunningServer,
) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    (old, _, _), events = await _three_rooms(alice, bob)
    top = await sliding_sync(alice, _window(0))
    assert list(top["rooms"]) != [old]
    await _room_data(alice, old, "org.example.a", {"v": 1})
    await _room_data(alice, old, "m.tag", {"tags": {"u.work": {}}})
    await _read(bob, old, events[0])
    out = await sliding_sync(alice, _window(0), pos=top["pos"])
    scrolled = await sliding_sync(alice, _window(2), pos=out["pos"])
    assert scrolled["rooms"][old]["initial"] is True
    assert _data(scrolled, old) == {
        "org.example.a": {"v": 1},
        "m.tag": {"tags": {"u.work": {}}},
    }
    # Its timeline (limit 1) is alice's message, which bob read.
    assert bodies(scrolled["rooms"][old]) == [f"in {old}"]
    assert _readers(scrolled, old) == {events[0]: {bob.user_id}}


async def test_a_room_that_leaves_and_reenters_gets_only_what_it_missed(
    srv: RunningServer,
) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    (old, middle, new), events = await _three_rooms(alice, bob)
    body = await sliding_sync(alice, _window(1))
    assert set(body["rooms"]) == {new, middle}
    # A message in old brings it into the window; middle leaves it.
    await send(bob, old, "old wakes")
    body = await sliding_sync(alice, _window(1), pos=body["pos"])
    assert set(body["rooms"]) == {old}
    await _read(bob, middle, events[1])
    await _room_data(alice, middle, "org.example.m", {"v": 1})
    body = await sliding_sync(alice, _window(1), pos=body["pos"])
    assert _readers(body, middle) == {} and _data(body, middle) == {}
    # middle comes back on its own message: a delta (not initial) with the new message, its
    # missed receipt and account data.
    newer = await send(bob, middle, "middle is back")
    body = await sliding_sync(alice, _window(1), pos=body["pos"])
    room = body["rooms"][middle]
    assert "initial" not in room
    assert bodies(room) == ["middle is back"]
    assert _readers(body, middle) == {events[1]: {bob.user_id}}
    assert _data(body, middle) == {"org.example.m": {"v": 1}}
    # Out again (old's turn), back again with nothing missed: no receipts or data resent.
    await send(bob, old, "old again")
    await send(bob, new, "new again")
    body = await sliding_sync(alice, _window(1), pos=body["pos"])
    assert set(body["rooms"]) == {old, new}
    await _read(alice, middle, newer)  # alice's own receipt: sent when middle is back
    body = await sliding_sync(alice, _window(1), pos=body["pos"])
    await send(bob, middle, "middle once more")
    back = await sliding_sync(alice, _window(1), pos=body["pos"])
    assert bodies(back["rooms"][middle]) == ["middle once more"]
    assert _readers(back, middle) == {newer: {alice.user_id}}
    assert _data(back, middle) == {}


async def test_a_room_joined_comes_into_the_window_at_once(srv: RunningServer) -> None:
    """The join is the room's newest event: the room sorts first and a long-poll over the top
    of the list answers with it (as Synapse does), though its last message is older than every
    other room's."""
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    older = await create_room(bob, name="bob's old room", preset="public_chat")
    await send(bob, older, "long ago")
    await _three_rooms(alice, bob)
    first = await sliding_sync(alice, _window(0))
    assert first["lists"]["all_rooms"]["count"] == 3
    poll = asyncio.create_task(
        sliding_sync(alice, _window(0), pos=first["pos"], timeout=POLL_TIMEOUT_MS)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    start = time.perf_counter()
    await join(alice, older)
    answer = await poll
    assert time.perf_counter() - start < ANSWERED_WITHIN_S
    assert answer["lists"]["all_rooms"]["count"] == 4
    assert list(answer["rooms"]) == [older]
    assert answer["rooms"][older]["initial"] is True
    # Its bump_stamp is still its message's (a join is no bump event), below the others'.
    assert answer["rooms"][older]["bump_stamp"] < min(
        r["bump_stamp"] for r in first["rooms"].values()
    )


async def test_a_count_change_alone_ends_a_long_poll(srv: RunningServer) -> None:
    """alice leaves a room this connection never sent (outside the window): MSC4186 leaves it
    out of the list, so the count is all there is to tell, and the long-poll tells it."""
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    (old, _, new), _ = await _three_rooms(alice, bob)
    first = await sliding_sync(alice, _window(0))
    assert list(first["rooms"]) == [new]
    assert first["lists"]["all_rooms"]["count"] == 3
    poll = asyncio.create_task(
        sliding_sync(alice, _window(0), pos=first["pos"], timeout=POLL_TIMEOUT_MS)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    start = time.perf_counter()
    resp = await alice.post(f"/rooms/{old}/leave", {})
    assert resp.status_code == 200, resp.text
    answer = await poll
    assert time.perf_counter() - start < ANSWERED_WITHIN_S
    assert answer["lists"]["all_rooms"]["count"] == 2
    assert answer["rooms"] == {}
    # A client that lost that answer and sends the older pos again holds the older count: it
    # is told at once too.
    start = time.perf_counter()
    retried = await sliding_sync(
        alice, _window(0), pos=first["pos"], timeout=POLL_TIMEOUT_MS
    )
    assert time.perf_counter() - start < ANSWERED_WITHIN_S
    assert retried["lists"]["all_rooms"]["count"] == 2
    # Once it holds the new count, a long-poll with nothing new waits out its timeout.
    start = time.perf_counter()
    idle = await sliding_sync(alice, _window(0), pos=retried["pos"], timeout=600)
    assert time.perf_counter() - start >= 0.5
    assert idle["rooms"] == {} and idle["lists"]["all_rooms"]["count"] == 2


async def test_a_count_change_outside_the_window_wakes_a_window_below_the_top(
    srv: RunningServer,
) -> None:
    """A window over the second room only: a new invite sorts first, the room it pushes into
    the window was sent already. Nothing but the count is new (Synapse answers this one at its
    timeout; we answer at once)."""
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    await _three_rooms(alice, bob)
    everything = await sliding_sync(alice, _window(2))
    second = {**_window(0)}
    second["lists"]["all_rooms"] = {**second["lists"]["all_rooms"], "ranges": [[1, 1]]}
    below = await sliding_sync(alice, second, pos=everything["pos"])
    assert below["rooms"] == {}
    poll = asyncio.create_task(
        sliding_sync(alice, second, pos=below["pos"], timeout=POLL_TIMEOUT_MS)
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    start = time.perf_counter()
    invite = await create_room(bob, name="invite", invite=[alice.user_id])
    answer = await poll
    assert time.perf_counter() - start < ANSWERED_WITHIN_S
    assert answer["lists"]["all_rooms"]["count"] == 4
    assert answer["rooms"] == {}
    top = await sliding_sync(alice, _window(0), pos=answer["pos"])
    assert list(top["rooms"]) == [invite]
