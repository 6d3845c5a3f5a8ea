"""The thread_subscriptions table (migration 0034) and the thread-updates query over
event_relations: positions taken only by real changes, manual subscriptions never downgraded,
automatic ones refused after an unsubscription that saw their cause (by stream position, or by
depth for a backfilled cause), the newest changes first cut; threads by their newest reply."""

from __future__ import annotations

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import thread_subscriptions as table
from dendrite_lite.storage.thread_subscriptions import Conflict, SubscriptionChange
from dendrite_lite.storage.thread_updates import ThreadUpdate, select_thread_updates

ALICE, BOB = "@alice:example.org", "@bob:example.org"
ROOM, OTHER = "!room:example.org", "!other:example.org"
ROOT = "$root"


async def _event(
    conn: aiosqlite.Connection, position: int, event_id: str, room_id: str = ROOM, *,
    depth: int = 1, thread: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO events (stream_ordering, event_id, room_id, room_version, type, sender,"
        " depth, origin_server_ts, json) VALUES (?, ?, ?, '10', 'm.room.message', ?, ?, 0, '{}')",
        (position, event_id, room_id, BOB, depth),
    )
    if thread is not None:
        await conn.execute(
            "INSERT INTO event_relations (event_id, relates_to, rel_type, room_id, type, sender,"
            " stream_ordering) VALUES (?, ?, 'm.thread', ?, 'm.room.message', ?, ?)",
            (event_id, thread, room_id, BOB, position),
        )


async def _write(storage: Storage, fn):  # type: ignore[no-untyped-def]
    return await storage.db.write(fn)


async def test_only_real_changes_take_a_position(storage: Storage) -> None:
    await _write(storage, lambda c: _event(c, 1, ROOT))
    sub = lambda cause=None: _write(
        storage, lambda c: table.subscribe(c, ALICE, ROOM, ROOT, cause))
    unsub = lambda: _write(storage, lambda c: table.unsubscribe(c, ALICE, ROOM, ROOT))
    assert await unsub() is None  # never subscribed
    assert await sub(cause=(1, 1)) == 1  # automatic
    assert await sub(cause=(1, 1)) is None  # automatic again: nothing new
    assert await sub() == 2  # manual takes over
    assert await sub(cause=(5, 5)) is None  # and an automatic one does not downgrade it
    assert await sub() is None
    read = lambda: storage.db.read(
        lambda c: table.select_subscription(c, ALICE, ROOM, ROOT))
    assert await read() is False  # manual
    assert await unsub() == 3
    assert await read() is None
    assert await unsub() is None
    assert await storage.db.read(table.select_max_stream_id) == 3


async def test_automatic_after_unsubscription_compares_the_cause(storage: Storage) -> None:
    async def setup(c: aiosqlite.Connection) -> None:
        await _event(c, 1, ROOT, depth=1)
        await _event(c, 2, "$seen", depth=2, thread=ROOT)
        await _event(c, -3, "$backfilled_old", depth=1, thread=ROOT)

    await _write(storage, setup)
    await _write(storage, lambda c: table.subscribe(c, ALICE, ROOM, ROOT, None))
    await _write(storage, lambda c: table.unsubscribe(c, ALICE, ROOM, ROOT))  # saw up to 2, depth 2
    sub = lambda cause: _write(
        storage, lambda c: table.subscribe(c, ALICE, ROOM, ROOT, cause))
    assert await sub((2, 2)) is Conflict.UNSUBSCRIBED_LATER
    assert await sub((-3, 1)) is Conflict.UNSUBSCRIBED_LATER  # backfilled, older by depth
    # Backfilled after the unsubscription, deeper than anything it saw: subscribes.
    await _write(storage, lambda c: _event(c, -4, "$backfilled_new", depth=9, thread=ROOT))
    assert await sub((-4, 9)) == 3
    await _write(storage, lambda c: table.unsubscribe(c, ALICE, ROOM, ROOT))
    await _write(storage, lambda c: _event(c, 5, "$later", depth=3, thread=ROOT))
    assert await sub((5, 3)) == 5  # newer than the unsubscription: subscribes
    # A manual subscription is never refused.
    await _write(storage, lambda c: table.unsubscribe(c, ALICE, ROOM, ROOT))
    assert await sub(None) == 7


async def test_changes_are_the_newest_first_cut_oldest_first_returned(storage: Storage) -> None:
    async def setup(c: aiosqlite.Connection) -> None:
        for i in range(4):
            await _event(c, i + 1, f"$r{i}")

    await _write(storage, setup)
    for i in range(4):
        await _write(storage, lambda c, i=i: table.subscribe(c, ALICE, ROOM, f"$r{i}", None))
    await _write(storage, lambda c: table.subscribe(c, BOB, ROOM, "$r0", None))
    await _write(storage, lambda c: table.unsubscribe(c, ALICE, ROOM, "$r0"))
    changes = await storage.db.read(lambda c: table.select_changes(c, ALICE, 0, 100, 3))
    assert changes == [
        SubscriptionChange(3, ROOM, "$r2", True, False),
        SubscriptionChange(4, ROOM, "$r3", True, False),
        SubscriptionChange(6, ROOM, "$r0", False, False),
    ]
    assert await storage.db.read(lambda c: table.select_changes(c, ALICE, 3, 5, 10)) == [
        SubscriptionChange(4, ROOM, "$r3", True, False)]


async def test_thread_updates_newest_first_with_counts(storage: Storage) -> None:
    async def setup(c: aiosqlite.Connection) -> None:
        await _event(c, 1, "$a")
        await _event(c, 2, "$b")
        await _event(c, 3, "$o", OTHER)
        await _event(c, 4, "$a1", thread="$a")
        await _event(c, 5, "$b1", thread="$b")
        await _event(c, 6, "$a2", thread="$a")
        await _event(c, 7, "$o1", OTHER, thread="$o")
        await _event(c, 8, "$stray", OTHER, thread="$a")  # claims a root of another room

    await _write(storage, setup)

    async def updates(**kw):  # type: ignore[no-untyped-def]
        return await storage.db.read(lambda c: select_thread_updates(c, **kw))

    everything = await updates(room_ids=[ROOM, OTHER], after=None, until=None, limit=10)
    assert everything == [
        ThreadUpdate(OTHER, "$o", 7, "$o1", 1, 7),
        ThreadUpdate(ROOM, "$a", 6, "$a2", 2, 4),
        ThreadUpdate(ROOM, "$b", 5, "$b1", 1, 5),
    ]
    # The same from the events' side (a stretch), and bounded.
    assert await updates(room_ids=[ROOM, OTHER], after=0, until=None, limit=10) == everything
    assert await updates(room_ids=[ROOM], after=4, until=6, limit=10) == [
        ThreadUpdate(ROOM, "$a", 6, "$a2", 1, 6), ThreadUpdate(ROOM, "$b", 5, "$b1", 1, 5)]
    assert await updates(room_ids=[ROOM], after=None, until=5, limit=10) == [
        ThreadUpdate(ROOM, "$b", 5, "$b1", 1, 5), ThreadUpdate(ROOM, "$a", 4, "$a1", 1, 4)]
    assert await updates(room_ids=[ROOM, OTHER], after=None, until=None, before=6, limit=10) == [
        ThreadUpdate(ROOM, "$b", 5, "$b1", 1, 5)]
    assert await updates(room_ids=[ROOM, OTHER], after=None, until=None, limit=1) == everything[:1]
    assert await updates(room_ids=[], after=None, until=None, limit=10) == []
