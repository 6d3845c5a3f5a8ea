"""One application service's transactions: in order, one in flight, retried until taken.

An `AppserviceQueue` runs one task (federation/send_loop.py, as each federation destination
does). Woken by a commit that queued rows for its AS (or by ephemeral events in memory), it sends
`PUT /_matrix/app/v1/transactions/{txnId}` with up to MAX_EVENTS events, oldest first. What keeps
delivery ordered and exactly-once across failures and restarts:
- The transaction's id and the last outbox position it carries are written (appservice_state)
  before it is sent; rows are deleted only in the write that records the AS's 200.
- A failed transaction is retried with the same id and the same rows after the backoff; after a
  restart the recorded transaction is rebuilt from the same rows with the same id, so an AS that
  took it but whose answer was lost drops it as a duplicate (the spec's txnId idempotency).
- Rows committed while a transaction is in flight wait for the next one.
- MSC3202 device list changes are not rows: a transaction carries those after the AS's cursor
  into the device list stream, up to a position recorded with it, and the acknowledging write
  moves the cursor there (appservice/device_lists.py).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.appservice import device_lists
from dendrite_lite.appservice.http import AppserviceError, AppserviceHttp
from dendrite_lite.appservice.registration import Registration
from dendrite_lite.events.pdu import client_format
from dendrite_lite.federation.destinations import BackoffPolicy
from dendrite_lite.federation.send_loop import SendLoop
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table
from dendrite_lite.storage import events as events_table

__all__ = ["MAX_EPHEMERAL", "MAX_EVENTS", "AppserviceQueue"]

log = logging.getLogger(__name__)

MAX_EVENTS = 100
MAX_EPHEMERAL = 100
# Ephemeral events waiting in memory for an AS that is down; beyond this the oldest go.
MAX_MEMORY_EPHEMERAL = 2_000


async def _nothing(conn: aiosqlite.Connection) -> None:
    return None


@dataclass(slots=True)
class _Txn:
    txn_id: int
    up_to: int  # the last outbox position carried (0: none)
    body: dict[str, Any]


class AppserviceQueue(SendLoop):
    """Use `start()`, then `wake()` / `add_ephemeral()` / `retry_now()`; `stop()` and `join()`
    at shutdown."""

    def __init__(
        self,
        reg: Registration,
        *,
        server_name: str,
        storage: Storage,
        http: AppserviceHttp,
        policy: BackoffPolicy,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(label=f"appservice-{reg.id}", clock=clock)
        self.reg = reg
        self._server_name = server_name
        self._storage = storage
        self._http = http
        self._policy = policy
        self._rng = rng
        self._ephemeral: deque[dict[str, Any]] = deque()
        self._current: _Txn | None = None
        self.sent_transactions = 0
        self.last_error: str | None = None

    def resume(self, retry_interval_ms: int, next_retry_ts: int) -> None:
        """The backoff an earlier run stored, before `start()`."""
        self.retry_interval_ms, self.next_retry_ts = retry_interval_ms, next_retry_ts

    def retry_now(self) -> None:
        """The AS showed it is up (it pinged, or an admin asked): send without waiting."""
        self.retry_interval_ms = 0
        self.next_retry_ts = 0
        self._wake.set()

    def add_ephemeral(self, edu: dict[str, Any]) -> None:
        if len(self._ephemeral) >= MAX_MEMORY_EPHEMERAL:
            self._ephemeral.popleft()
        self._ephemeral.append(edu)
        self._wake.set()

    @property
    def pending_ephemeral(self) -> int:
        return len(self._ephemeral)

    async def _send_next(self) -> bool:
        # The rows that woke us were written inside a commit that may still be in progress: this
        # write is queued behind it, so once it returns they are readable.
        await self._storage.db.write(_nothing)
        txn = self._current or await self._build()
        if txn is None:
            return False
        self._current = txn
        try:
            await self._http.send_transaction(self.reg, txn.txn_id, txn.body)
        except AppserviceError as e:
            log.info("appservice %s: transaction %d failed: %s", self.reg.id, txn.txn_id, e.message)
            await self._backoff(e.message)
            return True
        now, as_id = self._now_ms(), self.reg.id
        await self._storage.db.write(lambda c: table.acknowledge_txn(c, as_id, txn.up_to, now))
        self._current = None
        self.retry_interval_ms = self.next_retry_ts = 0
        self.last_error = None
        self.sent_transactions += 1
        return True

    async def _build(self) -> _Txn | None:
        as_id = self.reg.id
        while True:
            state, rows, lists_up_to, lists = await self._storage.db.read(self._load)
            resend = state.pending_txn_id != 0
            if resend or rows or lists is not None or self._ephemeral:
                break
            if not lists_up_to:
                return None
            # Device list changes of nobody the AS hears of: its cursor moves past them unsent.
            await self._storage.db.write(
                lambda c, position=lists_up_to: table.advance_device_list_position(c, as_id, position)
            )
        ephemeral: list[dict[str, Any]] = []
        if not resend:
            while self._ephemeral and len(ephemeral) < MAX_EPHEMERAL:
                ephemeral.append(self._ephemeral.popleft())
        up_to = rows[-1].position if rows else 0
        if resend:
            txn_id = state.pending_txn_id
        else:
            txn_id = await self._storage.db.write(
                lambda c: table.begin_txn(c, as_id, up_to, lists_up_to)
            )
        events = await self._events([r.event_id for r in rows if r.event_id is not None])
        to_device = [dict(r.content) for r in rows if r.edu_type == "m.to_device" and r.content]
        body: dict[str, Any] = {"events": events}
        if self.reg.device_lists:
            await self._add_key_counts(body, events, ephemeral, to_device)
            if lists is not None:
                body["org.matrix.msc3202.device_lists"] = lists
        if ephemeral:
            # MSC2409's stable name and the unstable one bridges older than the spec read.
            body["ephemeral"] = ephemeral
            body["de.sorunome.msc2409.ephemeral"] = ephemeral
        if to_device:
            body["de.sorunome.msc2409.to_device"] = to_device
        return _Txn(txn_id, up_to, body)

    def _ours(self, user_id: str) -> bool:
        """The AS's own users: its sender and its user namespace."""
        return user_id == self.reg.sender(self._server_name) or self.reg.matches("users", user_id)

    async def _load(
        self, conn: aiosqlite.Connection
    ) -> tuple[table.AppserviceState, list[table.OutboxRow], int, dict[str, list[str]] | None]:
        """In one read: the AS's state, the outbox rows and device list changes of its next
        transaction (those the recorded one carries, when resending): (state, rows, the last
        device list position carried or 0, device_lists or None)."""
        state = await table.select_state(conn, self.reg.id)
        if state.pending_txn_id:
            rows = (
                await table.select_outbox(conn, self.reg.id, MAX_EVENTS, state.pending_up_to)
                if state.pending_up_to else []
            )
            until: int | None = state.pending_device_list_up_to
        else:
            rows = await table.select_outbox(conn, self.reg.id, MAX_EVENTS)
            until = None
        if not self.reg.device_lists:
            return state, rows, 0, None
        up_to, lists = await device_lists.summary(
            conn, self._server_name, self._ours, since=state.device_list_position, until=until,
            entries=[r.content for r in rows if r.edu_type == device_lists.EDU_TYPE and r.content],
        )
        return state, rows, up_to, lists

    async def _add_key_counts(
        self, body: dict[str, Any], events: list[dict[str, Any]], ephemeral: list[dict[str, Any]],
        to_device: list[dict[str, Any]],
    ) -> None:
        """MSC3202: the one-time key counts and unused fallback key types of the devices of the
        AS's users this transaction concerns, so an encrypting bridge replenishes its keys."""
        users = {e.get("sender") for e in events} | {e.get("state_key") for e in events}
        users |= {m.get("to_user_id") for m in to_device}
        for edu in ephemeral:
            users |= set(edu.get("content", {}).get("user_ids", []))
        ours = [u for u in users if isinstance(u, str) and self.reg.matches("users", u)]
        if not ours:
            return
        counts, fallbacks = await self._storage.db.read(lambda c: table.select_key_counts(c, ours))
        body["org.matrix.msc3202.device_one_time_keys_count"] = counts
        body["org.matrix.msc3202.device_unused_fallback_key_types"] = fallbacks

    async def _events(self, event_ids: list[str]) -> list[dict[str, Any]]:
        if not event_ids:
            return []
        stored = await self._storage.db.read(lambda c: events_table.select_events(c, event_ids))
        now = self._now_ms()
        out = []
        for event_id in event_ids:
            s = stored.get(event_id)
            if s is None:
                continue  # purged since it was queued
            age = max(0, now - s.event.origin_server_ts)
            out.append(client_format(s.event, unsigned={"age": age}))
        return out

    async def _backoff(self, reason: str) -> None:
        now = self._now_ms()
        self.last_error = reason
        self.retry_interval_ms = self._policy.next_interval(self.retry_interval_ms)
        self.next_retry_ts = now + self._policy.delay(self.retry_interval_ms, self._rng)
        as_id, interval, retry_ts = self.reg.id, self.retry_interval_ms, self.next_retry_ts
        await self._storage.db.write(
            lambda c: table.update_failure(c, as_id, now, reason, interval, retry_ts)
        )
