"""Per-destination federation health (for the TUI and `doctor`) and the sender's backoff rule.

Health is what the sender stored after its last attempts (storage.destinations) plus how many
outbox rows still wait for the destination (storage.outbox). Both functions only read, so the
TUI and `doctor` may call them while the server runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import destinations as table
from dendrite_lite.storage import outbox as outbox_table

__all__ = ["DestinationHealth", "BackoffPolicy", "list_destinations", "destination_health"]


@dataclass(frozen=True, slots=True)
class DestinationHealth:
    destination: str
    last_success_ts: int | None  # ms; None: never reached
    last_failure_ts: int | None
    last_failure_reason: str | None
    retry_interval_ms: int  # the current backoff step; 0 when the last attempt worked
    next_retry_ts: int  # ms; no transaction is attempted before it (0: any time)
    pending: int  # PDUs and persisted EDUs still queued for it

    def backing_off(self, now_ms: int) -> bool:
        return self.next_retry_ts > now_ms

    @property
    def healthy(self) -> bool:
        """The last attempt succeeded (or none failed yet)."""
        return self.retry_interval_ms == 0


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff: initial_ms, doubling up to max_ms, each wait +-jitter (fraction)."""

    initial_ms: int = 5_000
    max_ms: int = 3_600_000
    multiplier: float = 2.0
    jitter: float = 0.2

    def next_interval(self, current_ms: int) -> int:
        if current_ms <= 0:
            return self.initial_ms
        return min(self.max_ms, int(current_ms * self.multiplier))

    def delay(self, interval_ms: int, rng: Callable[[], float] = random.random) -> int:
        """The wait for one step: jitter spreads the retries of many senders that failed at once."""
        return max(0, int(interval_ms * (1 + self.jitter * (2 * rng() - 1))))


def _health(row: table.DestinationRow | None, name: str, pending: int) -> DestinationHealth:
    if row is None:
        return DestinationHealth(name, None, None, None, 0, 0, pending)
    return DestinationHealth(
        destination=row.destination,
        last_success_ts=row.last_success_ts,
        last_failure_ts=row.last_failure_ts,
        last_failure_reason=row.last_failure_reason,
        retry_interval_ms=row.retry_interval_ms,
        next_retry_ts=row.next_retry_ts,
        pending=pending,
    )


async def list_destinations(storage: Storage) -> list[DestinationHealth]:
    """Every destination we ever tried or still have something queued for, by name."""

    async def load(conn: aiosqlite.Connection) -> list[DestinationHealth]:
        rows = {r.destination: r for r in await table.select_destinations(conn)}
        pending = await outbox_table.select_pending_counts(conn)
        names = sorted(rows.keys() | pending.keys())
        return [_health(rows.get(n), n, pending.get(n, 0)) for n in names]

    return await storage.db.read(load)


async def destination_health(storage: Storage, name: str) -> DestinationHealth | None:
    """One destination's health; None if we never tried it and have nothing queued for it."""

    async def load(conn: aiosqlite.Connection) -> DestinationHealth | None:
        row = await table.select_destination(conn, name)
        pending = (await outbox_table.select_pending_counts(conn, name)).get(name, 0)
        if row is None and not pending:
            return None
        return _health(row, name, pending)

    return await storage.db.read(load)
