"""Unread counts per thread in /sync on a real server (sync.yaml unread_thread_notifications,
push.md §Marking notifications as read, receipts.md §Threaded read receipts): with the filter
flag the room's counts cover the main timeline and each thread is counted apart; a threaded
receipt clears only its thread, an unthreaded one everything up to its event."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import User, create_room, join, new_user, send, sync
from tests.spec_schema import assert_matches_operation

THREADS = {"room": {"timeline": {"unread_thread_notifications": True}}}
_txn = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("threads")) as s:
        yield s


async def _send_related(user: User, room_id: str, body: str, rel_type: str, parent: str) -> str:
    content = {"msgtype": "m.text", "body": body, "m.relates_to": {"rel_type": rel_type, "event_id": parent}}
    resp = await user.put(f"/rooms/{room_id}/send/m.room.message/r{next(_txn)}", content)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["event_id"])


async def _receipt(user: User, room_id: str, event_id: str, thread_id: str | None = None) -> None:
    body = {} if thread_id is None else {"thread_id": thread_id}
    resp = await user.post(f"/rooms/{room_id}/receipt/m.read/{event_id}", body)
    assert resp.status_code == 200, resp.text


def _counts(body: dict[str, Any], room_id: str) -> tuple[int, dict[str, int] | None]:
    """(main or room notification_count, {thread root: notification_count} or None if absent)."""
    room = body["rooms"]["join"][room_id]
    threads = room.get("unread_thread_notifications")
    per_thread = None if threads is None else {k: v["notification_count"] for k, v in threads.items()}
    return room["unread_notifications"]["notification_count"], per_thread


async def test_thread_counts_and_receipts(srv: RunningServer) -> None:
    alice, bob = await new_user(srv.client, "talice"), await new_user(srv.client, "tbob")
    room_id = await create_room(alice, preset="public_chat")
    await join(bob, room_id)
    first = await send(alice, room_id, "m1")  # main, later a thread root too
    root = await send(alice, room_id, "root")  # main: a thread root is in the main timeline
    reply1 = await _send_related(alice, room_id, "t1", "m.thread", root)
    side = await _send_related(alice, room_id, "m1a", "m.thread", first)
    reply2 = await _send_related(alice, room_id, "t2", "m.thread", root)
    # Two hops: a reference to an event in thread `root` is in that thread too.
    await _send_related(alice, room_id, "ref", "m.reference", reply1)
    last = await send(alice, room_id, "m2")  # main

    body = await sync(bob, filter=THREADS)
    assert_matches_operation("client-server/sync.yaml", "/sync", "get", 200, body)
    assert _counts(body, room_id) == (3, {root: 3, first: 1})
    since = body["next_batch"]
    # Without the flag: one count for the whole room, and no per-thread object.
    assert _counts(await sync(bob), room_id) == (7, None)

    # A threaded receipt clears its own thread only, even for main events before it.
    await _receipt(bob, room_id, reply1, root)
    body = await sync(bob, since=since, filter=THREADS)
    assert _counts(body, room_id) == (3, {root: 2, first: 1})
    assert _counts(await sync(bob), room_id) == (6, None)

    # A receipt on the main timeline leaves the threads' earlier events unread.
    await _receipt(bob, room_id, last, "main")
    assert _counts(await sync(bob, filter=THREADS), room_id) == (0, {root: 2, first: 1})

    # An unthreaded receipt clears every thread up to its event: left is the reference.
    await _receipt(bob, room_id, reply2)
    assert _counts(await sync(bob, filter=THREADS), room_id) == (0, {root: 1})
    assert _counts(await sync(bob), room_id) == (1, None)
    assert side  # thread `first` is fully read now, so it is left out above


async def test_no_thread_object_when_no_thread_has_unread(srv: RunningServer) -> None:
    alice, bob = await new_user(srv.client, "nalice"), await new_user(srv.client, "nbob")
    room_id = await create_room(alice, preset="public_chat")
    await join(bob, room_id)
    await send(alice, room_id, "plain")
    body = await sync(bob, filter=THREADS)
    assert _counts(body, room_id) == (1, None)
    assert body["rooms"]["join"][room_id]["unread_notifications"]["highlight_count"] == 0
