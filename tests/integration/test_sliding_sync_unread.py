"""Unread counts in sliding sync (MSC4186) and /sync: a read elsewhere clears them at once, and
they start at the user's join."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sliding_sync_helpers import all_rooms, sliding_sync
from tests.integration.sync_helpers import (
    create_room,
    join,
    numbered_user,
    send,
    sync,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-sync-unread")) as s:
        yield s


@pytest.mark.parametrize("receipt_type", ["m.read", "m.read.private"])
async def test_a_waiting_long_poll_sends_the_room_with_counts_cleared_by_the_users_receipt(
    srv: RunningServer, receipt_type: str
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    first = await sliding_sync(bob, all_rooms())
    last = await send(alice, room, "unread")
    counted = await sliding_sync(bob, all_rooms(), pos=first["pos"])
    assert counted["rooms"][room]["notification_count"] == 1
    poll = asyncio.create_task(
        sliding_sync(bob, all_rooms(), pos=counted["pos"], timeout=10_000)
    )
    await asyncio.sleep(0.3)  # the long-poll is waiting
    assert not poll.done()
    # As another device of bob's would: the read moves no room event, only the counts.
    resp = await bob.post(f"/rooms/{room}/receipt/{receipt_type}/{last}", {})
    assert resp.status_code == 200, resp.text
    woken = await asyncio.wait_for(poll, 5)
    assert woken["rooms"][room]["notification_count"] == 0
    assert woken["rooms"][room]["highlight_count"] == 0


async def test_counts_start_at_the_join_not_at_the_invite(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="private_chat")
    resp = await alice.post(f"/rooms/{room}/invite", {"user_id": bob.user_id})
    assert resp.status_code == 200, resp.text
    await send(alice, room, "while bob is invited")
    await join(bob, room)
    body = await sliding_sync(bob, all_rooms())
    assert body["rooms"][room]["notification_count"] == 0
    assert body["rooms"][room]["highlight_count"] == 0
    joined = (await sync(bob))["rooms"]["join"][room]
    assert joined["unread_notifications"]["notification_count"] == 0
    # What comes after the join counts.
    await send(alice, room, "after the join")
    later = await sliding_sync(bob, all_rooms(), pos=body["pos"])
    assert later["rooms"][room]["notification_count"] == 1
    joined = (await sync(bob))["rooms"]["join"][room]
    assert joined["unread_notifications"]["notification_count"] == 1
