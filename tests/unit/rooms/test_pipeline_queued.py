"""Pipelined sends: events of one room built on queued (uncommitted) ones, committed together.

A persist hook holds the storage writer inside the job of the message whose body is "hold"
(`Writer.release` lets it go), so later sends are built while it is queued, not committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.rooms.notifications import NotificationCounter
from dendrite_lite.rooms.pipeline import EventSpec, PersistedEvent
from dendrite_lite.storage import events as ev
from dendrite_lite.storage import notifications as push_table
from dendrite_lite.storage import state as st
from tests.unit.rooms.room_env import ALICE, BOB, CAROL, RoomEnv, open_env


def _msg(body: str, sender: str = ALICE, txn: tuple[str, str, str] | None = None) -> EventSpec:
    return EventSpec(sender, "m.room.message", {"msgtype": "m.text", "body": body}, txn=txn)


class Writer:
    """Persist hook: records built batches; holds the writer on "hold", fails on "boom"."""

    def __init__(self) -> None:
        self.prepared: list[Event] = []
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def hook(self, room_id: str, events: Sequence[Event]) -> Any:
        self.prepared.extend(events)

        async def write(conn: Any, persisted: Sequence[tuple[Event, int]]) -> None:
            bodies = {e.content.get("body") for e, _ in persisted}
            if "hold" in bodies:
                self.holding.set()
                await self.release.wait()
            if "boom" in bodies:
                raise RuntimeError("boom")

        return write

    def built(self, body: str) -> Event:
        return next(e for e in self.prepared if e.content.get("body") == body)


@pytest.fixture
async def env(tmp_path: Path):
    room = await open_env(tmp_path)
    await room.send()  # the head is known in memory from here on
    yield room
    await room.storage.close()


@pytest.fixture
async def writer(env: RoomEnv):
    w = Writer()
    env.pipeline._persist_hooks.append(w.hook)  # noqa: SLF001 - test seam
    yield w
    w.release.set()  # a failed test must not leave the writer stuck (closing waits for it)


async def _eventually(check, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


def _start(env: RoomEnv, spec: EventSpec) -> asyncio.Task[PersistedEvent]:
    return asyncio.create_task(env.pipeline.send(env.room_id, spec))


async def _hold(env: RoomEnv, writer: Writer) -> asyncio.Task[PersistedEvent]:
    """Send "hold" and wait until the writer is stuck inside its job."""
    task = _start(env, _msg("hold"))
    await asyncio.wait_for(writer.holding.wait(), 5)
    return task


async def _extremities(env: RoomEnv) -> list[str]:
    rows = await env.storage.db.read(lambda c: ev.select_forward_extremities(c, env.room_id))
    return [e for e, _ in rows]


async def _stored(env: RoomEnv, event_id: str) -> bool:
    return await env.storage.db.read(lambda c: ev.select_event(c, event_id)) is not None


async def test_sends_build_on_a_queued_event_and_share_one_commit(
    env: RoomEnv, writer: Writer
) -> None:
    hold = await _hold(env, writer)
    rest = [_start(env, _msg(f"m{i}", BOB)) for i in range(3)]
    # Built and queued while "hold" is not committed (the lock did not wait for its fsync).
    await _eventually(lambda: len(writer.prepared) == 4)
    with env.notifier.listen(ALICE) as alice:
        await asyncio.sleep(0.02)
        assert not any(t.done() for t in [hold, *rest])  # no answer before the commit
        assert not await alice.wait(0.01)  # no /sync wake-up before the commit either
        writer.release.set()
        sent = [await hold, *[await t for t in rest]]
        assert await alice.wait(1)
    for a, b in zip(sent, sent[1:]):
        assert b.event.prev_event_ids == (a.event.event_id,)
        assert b.event.depth == a.event.depth + 1
        assert b.stream_ordering > a.stream_ordering
    # The three built on the queued one went to the writer together: one transaction.
    assert env.storage.db.stats.max_group >= 3
    assert await _extremities(env) == [sent[-1].event.event_id]


async def test_a_failed_queued_write_fails_what_was_built_on_it(
    env: RoomEnv, writer: Writer
) -> None:
    hold = await _hold(env, writer)
    boom = _start(env, _msg("boom"))
    after = [_start(env, _msg(f"after{i}", BOB)) for i in range(2)]
    await _eventually(lambda: len(writer.prepared) == 4)
    assert writer.built("after0").prev_event_ids == (writer.built("boom").event_id,)
    writer.release.set()
    kept = await hold
    with pytest.raises(RuntimeError, match="boom"):
        await boom
    for task in after:
        with pytest.raises(MatrixError) as exc:
            await task
        assert exc.value.errcode == "M_UNKNOWN" and exc.value.status == 500
    # Nothing that cites the rolled-back event was stored.
    for body in ("boom", "after0", "after1"):
        assert not await _stored(env, writer.built(body).event_id)
    assert await _extremities(env) == [kept.event.event_id]
    # The in-memory head fell back to the database's.
    again = await env.send(BOB)
    assert again.event.prev_event_ids == (kept.event.event_id,)
    assert again.event.depth == kept.event.depth + 1


async def test_a_failed_commit_fails_the_next_group_built_on_it(
    env: RoomEnv, writer: Writer, monkeypatch
) -> None:
    before = await _extremities(env)
    hold = await _hold(env, writer)  # alone in its group: the writer took it before the rest
    nxt = _start(env, _msg("next", BOB))
    await _eventually(lambda: len(writer.prepared) == 2)
    db = env.storage.db
    real = db._blocking  # noqa: SLF001 - test seam: the COMMIT statement
    failed = {"done": False}

    async def failing(sql: str) -> None:
        if sql == "COMMIT" and not failed["done"]:
            failed["done"] = True
            raise OSError("fsync failed")
        await real(sql)

    monkeypatch.setattr(db, "_blocking", failing)
    writer.release.set()
    with pytest.raises(OSError):
        await hold
    with pytest.raises(MatrixError) as exc:
        await nxt
    assert exc.value.errcode == "M_UNKNOWN"
    assert not await _stored(env, writer.built("next").event_id)
    assert await _extremities(env) == before
    again = await env.send()
    assert again.event.prev_event_ids == tuple(before)


async def _sent_twice_while_queued(
    env: RoomEnv, writer: Writer, spec: EventSpec
) -> tuple[asyncio.Task[PersistedEvent], asyncio.Task[PersistedEvent]]:
    """`spec` sent, queued behind "hold", and sent again (a retry) before anything commits."""
    hold = await _hold(env, writer)
    first = _start(env, spec)
    await _eventually(lambda: len(writer.prepared) == 2)
    retry = _start(env, spec)
    await asyncio.sleep(0.02)
    writer.release.set()
    await hold
    return first, retry


async def test_a_retried_txn_while_queued_gets_the_same_event(env: RoomEnv, writer: Writer) -> None:
    txn = (BOB, "PHONE", "t1")
    first, retry = await _sent_twice_while_queued(env, writer, _msg("once", BOB, txn))
    a, b = await first, await retry
    assert a.event.event_id == b.event.event_id and a.stream_ordering == b.stream_ordering
    assert [e.content["body"] for e in writer.prepared].count("once") == 1  # built once
    stored = await env.storage.db.read(lambda c: ev.select_event_by_txn(c, *txn))
    assert stored is not None and stored.event.event_id == a.event.event_id
    # And once committed, from the database.
    third = await env.pipeline.send(env.room_id, _msg("once", BOB, txn))
    assert third.event.event_id == a.event.event_id


async def test_a_retried_txn_of_a_queued_write_that_fails_fails_too(
    env: RoomEnv, writer: Writer
) -> None:
    txn = (BOB, "PHONE", "t2")
    first, retry = await _sent_twice_while_queued(env, writer, _msg("boom", BOB, txn))
    for task in (first, retry):
        with pytest.raises(RuntimeError, match="boom"):
            await task
    # Nothing was stored under the txn: the next try is a new event.
    later = await env.pipeline.send(env.room_id, _msg("fine", BOB, txn))
    assert later.event.event_id != writer.built("boom").event_id
    stored = await env.storage.db.read(lambda c: ev.select_event_by_txn(c, *txn))
    assert stored is not None and stored.event.event_id == later.event.event_id


async def test_room_lock_waits_for_queued_writes(env: RoomEnv, writer: Writer) -> None:
    hold = await _hold(env, writer)
    queued = _start(env, _msg("queued", BOB))
    await _eventually(lambda: len(writer.prepared) == 2)
    seen: list[list[str]] = []

    async def ingest_like() -> None:
        # What federation ingest does: take the room lock, read the head from the database.
        async with env.pipeline.room_lock(env.room_id):
            seen.append(await _extremities(env))

    holder = asyncio.create_task(ingest_like())
    await asyncio.sleep(0.02)
    assert not holder.done()  # held back while local events are queued
    writer.release.set()
    await holder
    await hold
    last = await queued
    assert seen == [[last.event.event_id]]
    # And while a lock holder works, local sends wait for it (they build after it).
    async with env.pipeline.room_lock(env.room_id):
        blocked = _start(env, _msg("after the lock"))
        await asyncio.sleep(0.02)
        assert not blocked.done()
    assert (await blocked).event.prev_event_ids == (last.event.event_id,)


async def test_commit_order_follows_the_prev_chain(env: RoomEnv, writer: Writer) -> None:
    hold = await _hold(env, writer)
    tasks = [_start(env, _msg(f"c{i}", ALICE if i % 2 else BOB)) for i in range(10)]
    await _eventually(lambda: len(writer.prepared) == 11)
    writer.release.set()
    sent = [await hold, *[await t for t in tasks]]
    by_position = sorted(sent, key=lambda p: p.stream_ordering)
    assert by_position == sent  # committed in the order built
    for a, b in zip(by_position, by_position[1:]):
        assert b.event.prev_event_ids == (a.event.event_id,)
    newest_first = await env.storage.db.read(
        lambda c: ev.select_room_events(c, env.room_id, limit=11, backwards=True)
    )
    assert [s.event.event_id for s in newest_first] == [p.event.event_id for p in reversed(sent)]


async def test_auth_of_an_event_built_after_a_queued_state_event_uses_its_state(
    env: RoomEnv, writer: Writer
) -> None:
    hold = await _hold(env, writer)
    ban = _start(env, EventSpec(ALICE, "m.room.member", {"membership": "ban"}, BOB))
    await _eventually(lambda: len(writer.prepared) == 2)
    by_bob = _start(env, _msg("banned now", BOB))
    joins = _start(env, EventSpec(CAROL, "m.room.member", {"membership": "join"}, CAROL))
    by_carol = _start(env, _msg("joined now", CAROL))
    writer.release.set()
    await hold
    banned = await ban
    with pytest.raises(MatrixError) as exc:
        await by_bob
    assert exc.value.errcode == "M_FORBIDDEN"
    joined = await joins
    said = await by_carol  # allowed only by the join it was built on
    assert joined.event.prev_event_ids == (banned.event.event_id,)
    assert said.event.prev_event_ids == (joined.event.event_id,)
    members = await env.storage.db.read(lambda c: st.select_members(c, env.room_id, "join"))
    assert set(members) == {ALICE, CAROL}


async def test_a_send_after_a_queued_join_counts_the_new_member(
    env: RoomEnv, writer: Writer
) -> None:
    # Persist hooks read the members from the database before a batch is queued, so nothing
    # may be built on a queued state event before it commits: carol's join must be counted.
    counter = NotificationCounter(env.storage, "test")
    env.pipeline._persist_hooks.insert(0, counter.prepare)  # noqa: SLF001 - test seam
    hold = await _hold(env, writer)
    joins = _start(env, EventSpec(CAROL, "m.room.member", {"membership": "join"}, CAROL))
    await _eventually(lambda: len(writer.prepared) == 2)
    said = _start(env, _msg("welcome aboard", BOB))  # no mention: a plain count
    writer.release.set()
    await hold
    joined, message = await joins, await said
    assert message.event.prev_event_ids == (joined.event.event_id,)
    counts = await env.storage.db.read(
        lambda c: push_table.select_unread_counts(c, CAROL, [env.room_id])
    )
    assert counts[env.room_id] == (1, 0)


async def test_redaction_and_state_through_the_queued_path(env: RoomEnv, writer: Writer) -> None:
    target = await env.send(BOB, {"msgtype": "m.text", "body": "oops"})
    hold = await _hold(env, writer)
    redaction = _start(env, EventSpec(BOB, "m.room.redaction", {}, redacts=target.event.event_id))
    await _eventually(lambda: len(writer.prepared) == 3)  # oops, hold, the redaction
    topic = _start(env, EventSpec(ALICE, "m.room.topic", {"topic": "pipelined"}, ""))
    await _eventually(lambda: len(writer.prepared) == 4)
    tail = _start(env, _msg("after the topic"))
    writer.release.set()
    await hold
    red, top, last = await redaction, await topic, await tail
    assert top.event.prev_event_ids == (red.event.event_id,)
    assert last.event.prev_event_ids == (top.event.event_id,)
    redacted = await env.storage.db.read(
        lambda c: ev.select_redactions_of(c, [target.event.event_id])
    )
    assert redacted == {target.event.event_id: red.event.event_id}
    state = await env.storage.db.read(lambda c: st.select_current_state(c, env.room_id))
    assert state[("m.room.topic", "")] == top.event.event_id


async def test_a_sender_that_goes_away_still_gets_its_event_committed_and_notified(
    env: RoomEnv, writer: Writer
) -> None:
    hold = await _hold(env, writer)
    gone = _start(env, _msg("client hung up", BOB))
    await _eventually(lambda: len(writer.prepared) == 2)
    gone.cancel()
    with env.notifier.listen(ALICE) as alice:
        writer.release.set()
        await hold
        assert await alice.wait(1)
    await asyncio.sleep(0.02)
    event_id = writer.built("client hung up").event_id
    assert await _stored(env, event_id)
    assert (await env.send()).event.prev_event_ids == (event_id,)
