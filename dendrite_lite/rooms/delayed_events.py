"""MSC4140 delayed events: a client schedules a room event to be sent later, then cancels it,
restarts its delay, or sends it now. Element Call schedules its call membership's end this way,
restarting the delay every few seconds, so a crashed client leaves the call by itself.

- The schedule is the delayed_events table (storage.delayed_events). A restart loses nothing:
  the task reads the table when it starts and sends what fell due meanwhile.
- One task (rooms.due_timer) sleeps until the earliest send time; scheduling or restarting
  wakes it, and it re-reads the table through the writer, so a new earlier row is always seen.
- Sending takes the ordinary road (RoomEventsService), as the owner, with the room's auth rules
  (power levels) checked then. An error is logged and the delayed event dropped (as Synapse).
- A due row is deleted after its event is sent, so a crash in between sends it again at start:
  a message then carries the txn id `msc4140-<delay_id>` and is found as a retransmission, and
  identical state from the same sender is not sent twice (RoomEventsService.set_state).
- "send now" claims its row by deleting it first, and a row the task is sending (`_sending`)
  is not found by cancel/restart/send, so no delayed event is sent twice by one process.
- Someone else's state event for the same (room, type, state key) cancels pending delayed state
  events of other users (a persist hook, in that event's transaction), as Synapse does.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.ratelimit import RateLimiter
from dendrite_lite.rooms.due_timer import DueTimer
from dendrite_lite.rooms.notifications import InTxn
from dendrite_lite.rooms.room_events import RoomEventsService
from dendrite_lite.storage import Storage
from dendrite_lite.storage import delayed_events as table
from dendrite_lite.storage.delayed_events import DelayedEvent

__all__ = ["MAX_PER_USER", "DelayedEvents", "cancel_overridden_state"]

log = logging.getLogger(__name__)

# Synapse's msc4140_max_delayed_events_per_user default.
MAX_PER_USER = 100
_BATCH = 100


def _not_found() -> MatrixError:
    return MatrixError(Errcode.NOT_FOUND, "Delayed event not found")


def _describe(event: DelayedEvent) -> dict[str, Any]:
    """GET /delayed_events/{delay_id}'s shape (Synapse's)."""
    out: dict[str, Any] = {
        "delay_id": event.delay_id, "room_id": event.room_id, "type": event.event_type,
        "delay_ms": event.delay_ms, "delayed_since_ts": event.running_since,
        "content": event.content,
    }
    if event.state_key is not None:
        out["state_key"] = event.state_key
    return out


async def cancel_overridden_state(room_id: str, events: Sequence[Event]) -> InTxn | None:
    """Persist hook: someone's state cancels other users' delayed events for that state (MSC4140
    "a delayed state event is cancelled when another user sets the same state")."""
    if not any(e.is_state() for e in events):
        return None

    async def in_txn(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
        for e, _ in persisted:
            if e.state_key is not None and e.rejected_reason is None:
                await table.delete_overridden_delayed_state(
                    conn, room_id, e.type, e.state_key, e.sender
                )

    return in_txn


class DelayedEvents:
    def __init__(
        self,
        storage: Storage,
        room_events: RoomEventsService,
        *,
        max_delay_ms: int,
        mgmt_limiter: RateLimiter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._room_events = room_events
        self.max_delay_ms = max_delay_ms  # 0: delayed events are off
        self._mgmt_limiter = mgmt_limiter
        self._clock = clock
        self._timer = DueTimer(self._run_due, "sending delayed events", clock=clock)
        self._sending: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.max_delay_ms > 0

    async def add(
        self, *, user_id: str, device_id: str | None, room_id: str, event_type: str,
        state_key: str | None, content: dict[str, Any], delay_ms: int, txn_id: str | None = None,
    ) -> str:
        """Schedule the event; its delay_id. A request retried with the same txn id gets the
        same delay_id while the event is pending."""
        if not self.enabled:
            raise MatrixError(Errcode.FORBIDDEN, "Sending delayed events has been disallowed")
        if delay_ms > self.max_delay_ms:
            raise MatrixError(
                Errcode.MAX_DELAY_EXCEEDED,
                f"The requested delay ({delay_ms}ms) exceeds the allowed maximum"
                f" ({self.max_delay_ms}ms)",
                max_delay=self.max_delay_ms,
                # Earlier MSC4140 clients (matrix-js-sdk's MatrixRTC) read these.
                **{"org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
                   "org.matrix.msc4140.max_delay": self.max_delay_ms},
            )
        self._room_events.send_limiter.check(user_id.lower())
        now = self._now_ms()
        event = DelayedEvent(
            f"syd_{secrets.token_urlsafe(15)}", user_id, device_id, room_id, event_type,
            state_key, content, delay_ms, now + delay_ms,
        )

        async def write(conn: aiosqlite.Connection) -> str:
            if txn_id is not None:
                earlier = await table.select_delay_id_by_txn(conn, user_id, device_id, txn_id)
                if earlier is not None:
                    return earlier
            if await table.count_user_delayed_events(conn, user_id) >= MAX_PER_USER:
                raise MatrixError(
                    Errcode.LIMIT_EXCEEDED, "The maximum number of delayed events has been reached."
                )
            await table.insert_delayed_event(conn, event, txn_id)
            return event.delay_id

        delay_id = await self._storage.db.write(write)
        self._timer.wake()
        return delay_id

    def check_mgmt_rate(self, key: str) -> None:
        """Synapse's rc_delayed_event_mgmt, per user (or per IP without a token)."""
        self._mgmt_limiter.check(key)

    async def cancel(self, delay_id: str) -> None:
        if delay_id in self._sending:
            raise _not_found()
        if not await self._storage.db.write(lambda c: table.delete_delayed_event(c, delay_id)):
            raise _not_found()

    async def restart(self, delay_id: str) -> None:
        if delay_id in self._sending:
            raise _not_found()
        now = self._now_ms()
        found = await self._storage.db.write(
            lambda c: table.update_restart_delayed_event(c, delay_id, now)
        )
        if not found:
            raise _not_found()
        self._timer.wake()

    async def send_now(self, delay_id: str) -> None:
        """Send it at once. Errors from sending reach the client; the event is gone either way."""
        if delay_id in self._sending:
            raise _not_found()

        async def claim(conn: aiosqlite.Connection) -> DelayedEvent | None:
            event = await table.select_delayed_event(conn, delay_id)
            if event is not None:
                await table.delete_delayed_event(conn, delay_id)
            return event

        event = await self._storage.db.write(claim)
        if event is None:
            raise _not_found()
        await self._send(event)

    async def list_for_user(self, user_id: str) -> list[dict[str, Any]]:
        """GET /delayed_events: with the field names of earlier MSC4140 revisions too (as
        Synapse), which matrix-js-sdk's types still use."""
        events = await self._storage.db.read(lambda c: table.select_user_delayed_events(c, user_id))
        return [
            _describe(e) | {"delay": e.delay_ms, "running_since": e.running_since}
            for e in events if e.delay_id not in self._sending
        ]

    async def get_for_user(self, user_id: str, delay_id: str) -> dict[str, Any]:
        event = await self._storage.db.read(lambda c: table.select_delayed_event(c, delay_id))
        if event is None or event.user_id != user_id or delay_id in self._sending:
            raise _not_found()
        return _describe(event)

    def start(self) -> None:
        self._timer.start()

    async def close(self) -> None:
        await self._timer.close()

    async def send_due(self) -> int:
        """Send every delayed event due now; returns how many were taken."""
        total = 0
        while True:
            now = self._now_ms()
            due = await self._storage.db.write(
                lambda c, now=now: table.select_due_delayed_events(c, now, _BATCH)
            )
            sent_state: set[tuple[str, str, str]] = set()
            for event in due:
                if event.state_key is None:
                    await self._send_due(event)
                    continue
                key = (event.room_id, event.event_type, event.state_key)
                # Several due for one piece of state: the earliest wins (as Synapse).
                if key in sent_state:
                    await self._storage.db.write(
                        lambda c, i=event.delay_id: table.delete_delayed_event(c, i)
                    )
                else:
                    await self._send_due(event)
                    sent_state.add(key)
            total += len(due)
            if len(due) < _BATCH:
                return total

    async def _send_due(self, event: DelayedEvent) -> None:
        self._sending.add(event.delay_id)
        try:
            await self._send(event)
        except MatrixError as e:  # refused (power levels, left the room): expected, no trace
            log.warning(
                "delayed event %s (%s in %s from %s) was refused and dropped: %s",
                event.delay_id, event.event_type, event.room_id, event.user_id, e,
            )
        except Exception:
            log.exception(
                "delayed event %s (%s in %s from %s) could not be sent; dropped",
                event.delay_id, event.event_type, event.room_id, event.user_id,
            )
        finally:
            try:
                await self._storage.db.write(
                    lambda c: table.delete_delayed_event(c, event.delay_id)
                )
            finally:
                self._sending.discard(event.delay_id)

    async def _send(self, event: DelayedEvent) -> str:
        if event.state_key is not None:
            return await self._room_events.set_state(
                user_id=event.user_id, room_id=event.room_id, event_type=event.event_type,
                state_key=event.state_key, content=event.content, rate_limited=False,
            )
        return await self._room_events.send(
            user_id=event.user_id, device_id=event.device_id or "", room_id=event.room_id,
            event_type=event.event_type, txn_id=f"msc4140-{event.delay_id}",
            content=event.content, rate_limited=False,
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run_due(self) -> int | None:
        await self.send_due()
        return await self._storage.db.write(table.select_next_send_ts)
