"""Unread counts from push rules, written with the events (rooms.notifications), as members and
their display names change between messages (the push context is kept per state group)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.rooms.notifications import NotificationCounter
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import notifications as table
from dendrite_lite.sync.notifier import Notifier
from tests.unit.rooms.room_env import ALICE, BOB, CAROL, _opening


@pytest.fixture
async def room(tmp_path: Path):
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    counter = NotificationCounter(storage, "test")
    pipeline = RoomPipeline(
        storage, server_name="test", key=new_server_key(), notifier=Notifier(),
        persist_hooks=[counter.prepare],
    )
    room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, _opening(ALICE))
    yield storage, pipeline, room_id
    await storage.close()


def _member(user: str, **content: str) -> EventSpec:
    return EventSpec(user, "m.room.member", {"membership": "join", **content}, user)


def _say(user: str, body: str) -> EventSpec:
    return EventSpec(user, "m.room.message", {"msgtype": "m.text", "body": body})


async def _counts(storage: Storage, user: str, room_id: str) -> tuple[int, int]:
    return (await storage.db.read(lambda c: table.select_unread_counts(c, user, [room_id])))[room_id]


async def test_counts_follow_joins_and_display_names(room) -> None:
    storage, pipeline, room_id = room
    await pipeline.send(room_id, _member(BOB))
    await pipeline.send(room_id, _say(BOB, "one"))
    await pipeline.send(room_id, _say(BOB, "two"))
    assert await _counts(storage, ALICE, room_id) == (2, 0)
    assert await _counts(storage, BOB, room_id) == (0, 0)  # own messages never notify

    await pipeline.send(room_id, _member(CAROL))  # new state: carol is counted from now on
    await pipeline.send(room_id, _say(BOB, "three"))
    assert await _counts(storage, CAROL, room_id) == (1, 0)
    assert await _counts(storage, ALICE, room_id) == (3, 0)

    # @room needs the sender to reach notifications.room (50): bob cannot, until the power
    # levels (new state, so a new push context) say he can.
    room_mention = {"msgtype": "m.text", "body": "@room hi", "m.mentions": {"room": True}}
    await pipeline.send(room_id, EventSpec(BOB, "m.room.message", room_mention))
    assert await _counts(storage, CAROL, room_id) == (2, 0)
    levels = {"users": {BOB: 50}, "users_default": 0}
    await pipeline.send(room_id, EventSpec(ALICE, "m.room.power_levels", levels, ""))
    await pipeline.send(room_id, EventSpec(BOB, "m.room.message", room_mention))
    assert await _counts(storage, CAROL, room_id) == (3, 1)  # state events other than members do not notify


async def test_actions_stored_only_when_not_implied(room) -> None:
    """A plain message in a 3-member room and a mention store NULL (the actions the highlight
    flag implies); a 1:1 message's sound tweak is stored, and every row reads back in full."""
    storage, pipeline, room_id = room
    await pipeline.send(room_id, _member(BOB))
    one_to_one = await pipeline.send(room_id, _say(BOB, "just us"))
    await pipeline.send(room_id, _member(CAROL))
    plain = await pipeline.send(room_id, _say(BOB, "all of us"))
    mention = {"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [ALICE]}}
    highlighted = await pipeline.send(room_id, EventSpec(BOB, "m.room.message", mention))

    def stored(conn):  # type: ignore[no-untyped-def]
        return conn.execute_fetchall(
            "SELECT stream_ordering, actions FROM event_push_actions WHERE user_id = ?", (ALICE,)
        )

    raw = dict(await storage.db.read(stored))
    assert raw == {
        one_to_one.stream_ordering: '["notify",{"set_tweak":"sound","value":"default"}]',
        plain.stream_ordering: None,
        highlighted.stream_ordering: None,
    }
    rows = await storage.db.read(lambda c: table.select_notifications(
        c, ALICE, [room_id], before=1 << 62, limit=10, only_highlight=False))
    sound = {"set_tweak": "sound", "value": "default"}
    assert [r.actions for r in rows] == [
        ["notify", {"set_tweak": "highlight", "value": True}, sound], ["notify"], ["notify", sound]
    ]
