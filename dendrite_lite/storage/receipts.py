"""The receipts table: the latest receipt per (room, type, user, thread) (migrations/0006_user_data.sql).

thread_id '' stands for an unthreaded receipt. Every write gets the next position of the
receipt stream (MAX(stream_id) + 1 in the writing transaction; rows are never deleted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "UNTHREADED",
    "ReadPosition",
    "Receipt",
    "select_latest_read",
    "select_max_stream_id",
    "select_receipt_position",
    "select_receipts_since",
    "select_rooms_read_since",
    "upsert_receipt",
]

UNTHREADED = ""
# SQLite's default limit on host parameters is 999 in old builds; stay well below it.
_CHUNK = 500

SELECT_MAX = "SELECT COALESCE(MAX(stream_id), 0) FROM receipts"
# The acknowledged event's position in the room-event stream, for "only move forward".
SELECT_POSITION = (
    "SELECT r.event_id, e.stream_ordering FROM receipts r"
    " LEFT JOIN events e ON e.event_id = r.event_id"
    " WHERE r.room_id = ? AND r.receipt_type = ? AND r.user_id = ? AND r.thread_id = ?"
)
SELECT_SINCE = (
    "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id FROM receipts"
    " WHERE stream_id > ? AND stream_id <= ? AND room_id IN ({}) ORDER BY stream_id"
)
SELECT_LATEST_READ = (
    "SELECT r.event_id, e.stream_ordering FROM receipts r JOIN events e ON e.event_id = r.event_id"
    " WHERE r.room_id = ? AND r.user_id = ? AND r.receipt_type IN ({}) AND r.thread_id IN ({})"
    " ORDER BY e.stream_ordering DESC LIMIT 1"
)
# The rooms where the user's own read receipt (public or private) moved: their unread counts
# may have changed.
SELECT_ROOMS_READ = (
    "SELECT DISTINCT room_id FROM receipts WHERE user_id = ? AND stream_id > ?"
    " AND receipt_type IN ('m.read', 'm.read.private')"
)
UPSERT = (
    "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET"
    " event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id"
)


@dataclass(frozen=True, slots=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str  # UNTHREADED for an unthreaded receipt
    event_id: str
    ts: int
    stream_id: int


@dataclass(frozen=True, slots=True)
class ReadPosition:
    """An acknowledged event and its position in the room-event stream."""

    event_id: str
    stream_ordering: int


def _marks(n: int) -> str:
    return ", ".join("?" * n)


async def select_max_stream_id(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_MAX) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_receipt_position(
    conn: aiosqlite.Connection, room_id: str, receipt_type: str, user_id: str, thread_id: str
) -> ReadPosition | None:
    """The user's current receipt of this kind; stream_ordering -1 if its event is unknown."""
    async with conn.execute(SELECT_POSITION, (room_id, receipt_type, user_id, thread_id)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return ReadPosition(row[0], row[1] if row[1] is not None else -1)


async def select_receipts_since(
    conn: aiosqlite.Connection, room_ids: Sequence[str], since: int, until: int
) -> list[Receipt]:
    """Receipts written in (since, until] in these rooms, oldest first."""
    out: list[Receipt] = []
    ids = list(room_ids)
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        sql = SELECT_SINCE.format(_marks(len(chunk)))
        async with conn.execute(sql, (since, until, *chunk)) as cur:
            out.extend(Receipt(*row) for row in await cur.fetchall())
    out.sort(key=lambda r: r.stream_id)
    return out


async def select_rooms_read_since(
    conn: aiosqlite.Connection, user_id: str, since: int
) -> set[str]:
    """The rooms where the user's m.read / m.read.private receipt was written after `since`."""
    async with conn.execute(SELECT_ROOMS_READ, (user_id, since)) as cur:
        return {row[0] for row in await cur.fetchall()}


async def select_latest_read(
    conn: aiosqlite.Connection,
    room_id: str,
    user_id: str,
    receipt_types: Sequence[str],
    thread_ids: Sequence[str],
) -> ReadPosition | None:
    """Of the user's receipts of these types and threads, the one furthest along the room."""
    sql = SELECT_LATEST_READ.format(_marks(len(receipt_types)), _marks(len(thread_ids)))
    async with conn.execute(sql, (room_id, user_id, *receipt_types, *thread_ids)) as cur:
        row = await cur.fetchone()
    return ReadPosition(row[0], row[1]) if row is not None else None


async def upsert_receipt(
    conn: aiosqlite.Connection,
    *,
    room_id: str,
    receipt_type: str,
    user_id: str,
    thread_id: str,
    event_id: str,
    ts: int,
) -> int:
    """Store the receipt (replacing the previous one of its kind); returns its stream position."""
    stream_id = await select_max_stream_id(conn) + 1
    await conn.execute(
        UPSERT, (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id)
    )
    return stream_id
