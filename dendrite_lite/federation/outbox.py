"""One destination's send queue: one transaction in flight, batches, backoff, acknowledgement.

A `DestinationQueue` runs one task. It sleeps until woken (new rows committed, an EDU, the
server talked to us) or until its backoff expires, then sends what is queued as transactions of
at most 50 PDUs and 100 EDUs, oldest first, one at a time. Outbox rows are deleted only in the
write that records the destination's 200, so a crash at any point resends instead of losing.

A transaction that failed is retried AS IS (same txnId, same body) after the backoff: the spec
says a sender must get a 200 for a txnId before sending a different one, and a receiver that
processed it but whose answer was lost then just answers from its cache.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiosqlite

from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.federation.client import FederationError, RemoteError
from dendrite_lite.federation.destinations import BackoffPolicy
from dendrite_lite.federation.send_loop import SendLoop
from dendrite_lite.storage import Storage
from dendrite_lite.storage import destinations as destinations_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import outbox as outbox_table

__all__ = [
    "MAX_PDUS",
    "MAX_EDUS",
    "Edu",
    "TransactionTransport",
    "DestinationQueue",
    "TxnIds",
    "is_permanent_failure",
]

log = logging.getLogger(__name__)

# server-server-api "Transactions": at most 50 PDUs and 100 EDUs per transaction.
MAX_PDUS = 50
MAX_EDUS = 100
# Ephemeral EDUs (typing, presence) waiting in memory for one destination; beyond this the
# oldest go (a server down for hours does not need every typing notification of the day).
MAX_MEMORY_EDUS = 2_000
# A healthy destination's success is recorded at most this often when nothing was deleted, so
# a burst of typing notifications does not turn into a burst of writes.
SUCCESS_WRITE_INTERVAL_MS = 60_000


@dataclass(frozen=True, slots=True)
class Edu:
    edu_type: str
    content: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"edu_type": self.edu_type, "content": self.content}


class TransactionTransport(Protocol):
    """PUT /_matrix/federation/v1/send/{txnId}: returns the parsed 200 body; raises
    federation.client.FederationError (RemoteError for a non-2xx answer) otherwise."""

    async def send_transaction(
        self, destination: str, txn_id: str, body: Mapping[str, Any]
    ) -> Any: ...


class TxnIds:
    """Transaction ids unique per destination across restarts: the start time in ms, then a
    counter (a restart within the same millisecond is the only collision, and impossible in
    practice: opening storage alone takes longer)."""

    def __init__(self, start_ms: int) -> None:
        self._prefix = str(start_ms)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}.{next(self._counter)}"


def is_permanent_failure(error: BaseException) -> bool:
    """A 4xx answer (other than 401/408/429) rejects this transaction for good: sending it
    again cannot help, so it is dropped instead of blocking the queue forever. 401 is kept
    retryable: the peer may not have fetched our key yet."""
    return isinstance(error, RemoteError) and 400 <= error.status < 500 and error.status not in (
        401, 408, 429
    )


@dataclass(slots=True)
class _Txn:
    txn_id: str
    body: dict[str, Any]
    positions: list[int]  # outbox rows acknowledged by this transaction's 200
    event_ids: list[str] = field(default_factory=list)


class DestinationQueue(SendLoop):
    """Use `start()`, then `wake()` / `add_edu()` / `mark_alive()`; `stop()` at shutdown."""

    def __init__(
        self,
        destination: str,
        *,
        origin: str,
        storage: Storage,
        transport: TransactionTransport,
        txn_ids: TxnIds,
        policy: BackoffPolicy,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        retry_interval_ms: int = 0,
        next_retry_ts: int = 0,
        on_outcome: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_outcome(destination, outcome)` hears how each attempt ended (metrics): "sent",
        "retry" (backing off) or "rejected" (dropped for good)."""
        super().__init__(
            label=f"federation-send-{destination}", clock=clock,
            retry_interval_ms=retry_interval_ms, next_retry_ts=next_retry_ts,
        )
        self.destination = destination
        self._origin = origin
        self._storage = storage
        self._transport = transport
        self._txn_ids = txn_ids
        self._policy = policy
        self._rng = rng
        self._on_outcome = on_outcome
        self._edus: deque[Edu] = deque()
        self._current: _Txn | None = None
        self._last_success_write_ms = 0
        self.sent_transactions = 0  # counters for tests and the TUI
        self.dropped_edus = 0

    # --- control (start, wake, stop, join: SendLoop) -----------------------------------------
    def add_edu(self, edu: Edu) -> None:
        if len(self._edus) >= MAX_MEMORY_EDUS:
            self._edus.popleft()
            self.dropped_edus += 1
        self._edus.append(edu)
        self._wake.set()

    def backing_off(self) -> bool:
        return self.next_retry_ts > self._now_ms()

    def mark_alive(self) -> bool:
        """The destination just talked to us: forget the backoff and send now. True if it was
        backing off (the caller then clears the stored backoff too)."""
        was = self.retry_interval_ms != 0 or self.next_retry_ts != 0
        self.retry_interval_ms = 0
        self.next_retry_ts = 0
        self._wake.set()
        return was

    @property
    def pending_memory_edus(self) -> int:
        return len(self._edus)

    # --- the loop (SendLoop._run calls these) ---------------------------------------------
    async def _send_next(self) -> bool:
        """Send one transaction; False if there was nothing to send."""
        txn = self._current or await self._build()
        if txn is None:
            return False
        self._current = txn
        if not txn.body["pdus"] and not txn.body.get("edus"):
            await self._acknowledge(txn, None)  # only rows of events since purged
            return True
        try:
            response = await self._transport.send_transaction(self.destination, txn.txn_id, txn.body)
        except asyncio.CancelledError:
            raise
        except FederationError as e:
            if is_permanent_failure(e):
                log.warning(
                    "federation: %s rejected transaction %s (%d PDUs); dropping it: %s",
                    self.destination, txn.txn_id, len(txn.body["pdus"]), e.message,
                )
                await self._acknowledge(txn, f"transaction rejected: {e.message}")
                self._report("rejected")
            else:
                log.info("federation: sending to %s failed: %s", self.destination, e.message)
                await self._backoff(e.message)
            return True
        _log_pdu_errors(self.destination, txn, response)
        await self._acknowledge(txn, None)
        self.sent_transactions += 1
        self._report("sent")
        return True

    def _report(self, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(self.destination, outcome)

    async def _build(self) -> _Txn | None:
        dest = self.destination

        async def load(conn: aiosqlite.Connection) -> tuple[Any, Any, Any]:
            pdu_rows = await outbox_table.select_outbox_pdus(conn, dest, MAX_PDUS)
            edu_rows = await outbox_table.select_outbox_edus(conn, dest, MAX_EDUS)
            events = await events_table.select_events(conn, [r.event_id for r in pdu_rows])
            return pdu_rows, edu_rows, events

        pdu_rows, edu_rows, events = await self._storage.db.read(load)
        memory: list[Edu] = []
        while self._edus and len(edu_rows) + len(memory) < MAX_EDUS:
            memory.append(self._edus.popleft())
        if not pdu_rows and not edu_rows and not memory:
            return None
        now = self._now_ms()
        pdus = []
        event_ids = []
        for row in pdu_rows:
            stored = events.get(row.event_id)
            if stored is None:
                log.warning("federation: queued event %s is gone; not sending it", row.event_id)
                continue
            pdus.append(pdu_for_federation(stored.event, now_ms=now))
            event_ids.append(row.event_id)
        edus = [Edu(r.edu_type, r.content).as_json() for r in edu_rows]
        edus += [e.as_json() for e in memory]
        body: dict[str, Any] = {"origin": self._origin, "origin_server_ts": now, "pdus": pdus}
        if edus:
            body["edus"] = edus
        positions = [r.position for r in pdu_rows] + [r.position for r in edu_rows]
        return _Txn(self._txn_ids.next(), body, positions, event_ids)

    async def _acknowledge(self, txn: _Txn, rejected: str | None) -> None:
        """The transaction is done with (200, or rejected for good): drop its rows, record it."""
        now = self._now_ms()
        dest = self.destination
        recorded = self.retry_interval_ms == 0 and now - self._last_success_write_ms < (
            SUCCESS_WRITE_INTERVAL_MS
        )
        if txn.positions or rejected is not None or not recorded:

            async def write(conn: aiosqlite.Connection) -> None:
                await outbox_table.delete_outbox_rows(conn, txn.positions)
                if rejected is None:
                    await destinations_table.upsert_destination_success(conn, dest, now)
                else:  # the server is up (it answered), so no backoff
                    await destinations_table.upsert_destination_failure(conn, dest, now, rejected, 0, 0)

            await self._storage.db.write(write)
            if rejected is None:
                self._last_success_write_ms = now
        self._current = None
        self.retry_interval_ms = 0
        self.next_retry_ts = 0

    async def _backoff(self, reason: str) -> None:
        self._report("retry")
        now = self._now_ms()
        self.retry_interval_ms = self._policy.next_interval(self.retry_interval_ms)
        self.next_retry_ts = now + self._policy.delay(self.retry_interval_ms, self._rng)
        interval, retry_ts, dest = self.retry_interval_ms, self.next_retry_ts, self.destination
        await self._storage.db.write(
            lambda conn: destinations_table.upsert_destination_failure(
                conn, dest, now, reason, interval, retry_ts
            )
        )


def _log_pdu_errors(destination: str, txn: _Txn, response: Any) -> None:
    results = response.get("pdus") if isinstance(response, Mapping) else None
    if not isinstance(results, Mapping):
        return
    for event_id, result in results.items():
        if isinstance(result, Mapping) and "error" in result:
            log.warning(
                "federation: %s refused %s (transaction %s): %s",
                destination, event_id, txn.txn_id, result.get("error"),
            )
