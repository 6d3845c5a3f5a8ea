"""The delayed_events table (migration 0035): due rows earliest first, restart from now, a
retried txn found, and someone else's state removing other users' delayed state only."""

from __future__ import annotations

from dendrite_lite.storage import Storage
from dendrite_lite.storage import delayed_events as table
from dendrite_lite.storage.delayed_events import DelayedEvent

ALICE, BOB = "@alice:example.org", "@bob:example.org"
ROOM = "!room:example.org"
CALL = "org.matrix.msc3401.call.member"


def _event(delay_id: str, user: str, send_ts: int, state_key: str | None = None) -> DelayedEvent:
    return DelayedEvent(
        delay_id, user, "DEV", ROOM, CALL if state_key is not None else "m.room.message",
        state_key, {"body": "é"}, 1000, send_ts,
    )


async def test_schedule_due_restart_and_delete(storage: Storage) -> None:
    w = storage.db.write
    await w(lambda c: table.insert_delayed_event(c, _event("a", ALICE, 5000), "t1"))
    await w(lambda c: table.insert_delayed_event(c, _event("b", ALICE, 3000), None))
    assert await w(table.select_next_send_ts) == 3000
    assert await w(lambda c: table.select_delay_id_by_txn(c, ALICE, "DEV", "t1")) == "a"
    assert await w(lambda c: table.select_delay_id_by_txn(c, ALICE, "OTHER", "t1")) is None
    assert await w(lambda c: table.count_user_delayed_events(c, ALICE)) == 2
    due = await w(lambda c: table.select_due_delayed_events(c, 5000, 10))
    assert [e.delay_id for e in due] == ["b", "a"]
    assert due[0].content == {"body": "é"} and due[0].running_since == 2000
    assert await w(lambda c: table.update_restart_delayed_event(c, "b", 10_000))
    assert not await w(lambda c: table.update_restart_delayed_event(c, "zzz", 10_000))
    assert [e.delay_id for e in await w(lambda c: table.select_user_delayed_events(c, ALICE))] == [
        "a", "b"
    ]
    assert (await w(lambda c: table.select_delayed_event(c, "b"))).send_ts == 11_000  # type: ignore[union-attr]
    assert await w(lambda c: table.delete_delayed_event(c, "a"))
    assert not await w(lambda c: table.delete_delayed_event(c, "a"))
    assert await w(table.select_next_send_ts) == 11_000


async def test_state_from_someone_else_removes_other_users_delayed_state(storage: Storage) -> None:
    w = storage.db.write
    await w(lambda c: table.insert_delayed_event(c, _event("alice", ALICE, 1, "k"), None))
    await w(lambda c: table.insert_delayed_event(c, _event("bob", BOB, 1, "k"), None))
    await w(lambda c: table.insert_delayed_event(c, _event("other", ALICE, 1, "k2"), None))
    await w(lambda c: table.insert_delayed_event(c, _event("msg", ALICE, 1), None))
    assert await w(lambda c: table.delete_overridden_delayed_state(c, ROOM, CALL, "k", BOB)) == 1
    left = await w(lambda c: table.select_due_delayed_events(c, 1, 10))
    assert sorted(e.delay_id for e in left) == ["bob", "msg", "other"]
