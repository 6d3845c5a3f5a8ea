"""MSC2228 self-destructing events: when each is due (migration 0028)."""

from __future__ import annotations

from collections.abc import Iterable

import aiosqlite

__all__ = [
    "delete_event_expiries",
    "insert_event_expiries",
    "select_due_event_expiries",
    "select_next_event_expiry",
]

INSERT_EXPIRY = "INSERT OR IGNORE INTO event_expiry (event_id, expiry_ts) VALUES (?, ?)"
SELECT_NEXT = "SELECT MIN(expiry_ts) FROM event_expiry"
SELECT_DUE = "SELECT event_id FROM event_expiry WHERE expiry_ts <= ? ORDER BY expiry_ts LIMIT ?"
DELETE_EXPIRY = "DELETE FROM event_expiry WHERE event_id = ?"


async def insert_event_expiries(
    conn: aiosqlite.Connection, expiries: Iterable[tuple[str, int]]
) -> None:
    """(event id, expiry ts in ms) pairs; an event already scheduled keeps its time."""
    await conn.executemany(INSERT_EXPIRY, list(expiries))


async def select_next_event_expiry(conn: aiosqlite.Connection) -> int | None:
    """The earliest expiry ts scheduled, None when nothing is."""
    async with conn.execute(SELECT_NEXT) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


async def select_due_event_expiries(
    conn: aiosqlite.Connection, now_ms: int, limit: int
) -> list[str]:
    """Ids of events due at now_ms, earliest first, at most `limit`."""
    async with conn.execute(SELECT_DUE, (now_ms, limit)) as cur:
        return [row[0] for row in await cur.fetchall()]


async def delete_event_expiries(conn: aiosqlite.Connection, event_ids: Iterable[str]) -> None:
    await conn.executemany(DELETE_EXPIRY, [(i,) for i in event_ids])
