"""MSC2228 self-destructing events: an event whose content carries `org.matrix.self_destruct_after`
(a timestamp in ms) is served redacted from that time on, to everyone, for good.

- The schedule is the event_expiry table (storage.event_expiry), written in the event's own
  transaction by a persist hook, for our users' events and other servers' alike. A restart
  loses nothing: the task reads the table when it starts and expires what fell due meanwhile.
- One task (rooms.due_timer) sleeps until the earliest expiry. Scheduling wakes it, and it
  re-reads the table through the writer, which runs after the transaction that scheduled the
  event, so a new earlier row is always seen.
- Expiring replaces the stored PDU by its redacted form (events.redaction), as Synapse prunes
  it, and drops its relations and search row. Its hashes and signatures still hold, so other
  servers accept it in that form.
- State events are never scheduled (nor by Synapse): pruning one would change the room's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.events.redaction import redact
from dendrite_lite.rooms.due_timer import DueTimer
from dendrite_lite.rooms.notifications import InTxn
from dendrite_lite.storage import Storage
from dendrite_lite.storage import event_expiry as expiry_table
from dendrite_lite.storage import events as events_table

__all__ = ["SELF_DESTRUCT_AFTER", "EventExpiry", "expiry_of"]

SELF_DESTRUCT_AFTER = "org.matrix.self_destruct_after"
# Events pruned per write transaction, so a backlog after a long downtime never holds the
# writer for long.
_BATCH = 100


def expiry_of(event: Event) -> int | None:
    """When the event self-destructs (ms), or None: not asked for, a state event, or rejected."""
    ts = event.content.get(SELF_DESTRUCT_AFTER)
    # bool is an int in Python, and never a timestamp.
    if type(ts) is not int or event.is_state() or event.rejected_reason is not None:
        return None
    return ts


class EventExpiry:
    def __init__(self, storage: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock
        self._timer = DueTimer(self._run_due, "expiring self-destructing events", clock=clock)

    async def prepare(self, room_id: str, events: Sequence[Event]) -> InTxn | None:
        """Persist hook: schedule the batch's self-destructing events with them."""
        if not any(expiry_of(e) is not None for e in events):
            return None

        async def in_txn(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            due = [(e.event_id, ts) for e, _ in persisted if (ts := expiry_of(e)) is not None]
            await expiry_table.insert_event_expiries(conn, due)
            self._timer.wake()

        return in_txn

    def start(self) -> None:
        self._timer.start()

    async def close(self) -> None:
        await self._timer.close()

    async def expire_due(self) -> int:
        """Prune every event due now; returns how many."""
        total = 0
        while True:
            done = await self._storage.db.write(self._expire_batch)
            total += done
            if done < _BATCH:
                return total

    async def _expire_batch(self, conn: aiosqlite.Connection) -> int:
        ids = await expiry_table.select_due_event_expiries(conn, self._now_ms(), _BATCH)
        stored = await events_table.select_events(conn, ids)
        for s in stored.values():
            pruned = redact(s.event.pdu, s.event.room_version)
            await events_table.update_event_pruned(conn, s.event.event_id, pruned)
        await expiry_table.delete_event_expiries(conn, ids)
        return len(ids)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run_due(self) -> int | None:
        await self.expire_due()
        return await self._storage.db.write(expiry_table.select_next_event_expiry)
