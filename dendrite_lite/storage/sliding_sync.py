"""Sliding sync connections (MSC4186): what each connection has been sent, per position
(schema in migrations/0031_sliding_sync_connections.sql, list_counts in 0036).

A connection is one (user, device, conn_id). A position is one response's view of what the client
holds; its rooms are a full copy (copy-on-change from the position before), so the position a
client sends back is all it takes to know what it has. The shape of `required_state` belongs to
the sync layer; here it is an opaque JSON string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "Connection",
    "SentRoom",
    "delete_connection",
    "delete_device_connections",
    "delete_excess_connections",
    "delete_idle_connections",
    "delete_other_positions",
    "insert_connection",
    "insert_position",
    "select_connection",
    "select_position_list_counts",
    "select_position_rooms",
    "update_last_used",
]


@dataclass(frozen=True, slots=True)
class SentRoom:
    room_id: str
    sent_to: int  # room-stream position up to which the room's timeline has been sent
    timeline_limit: int
    required_state: str  # JSON, as the sync layer wrote it


@dataclass(frozen=True, slots=True)
class Connection:
    conn_key: int
    last_used_ts: int


_SELECT_CONNECTION = (
    "SELECT conn_key, last_used_ts FROM sliding_sync_connections"
    " WHERE user_id = ? AND device_id = ? AND conn_id = ?"
)
_SELECT_POSITION = (
    "SELECT 1 FROM sliding_sync_positions WHERE position = ? AND conn_key = ?"
)
_SELECT_ROOMS = (
    "SELECT room_id, sent_to, timeline_limit, required_state FROM sliding_sync_rooms"
    " WHERE position = ?"
)
_INSERT_CONNECTION = (
    "INSERT INTO sliding_sync_connections (user_id, device_id, conn_id, created_ts, last_used_ts)"
    " VALUES (?, ?, ?, ?, ?)"
)
_DELETE_CONNECTION = "DELETE FROM sliding_sync_connections WHERE user_id = ? AND device_id = ? AND conn_id = ?"
_DELETE_OTHER_POSITIONS = (
    "DELETE FROM sliding_sync_positions WHERE conn_key = ? AND position != ?"
)
_DELETE_DEVICE = (
    "DELETE FROM sliding_sync_connections WHERE user_id = ? AND device_id = ?"
)
_DELETE_EXCESS = (
    "DELETE FROM sliding_sync_connections WHERE user_id = ? AND device_id = ? AND conn_key NOT IN"
    " (SELECT conn_key FROM sliding_sync_connections WHERE user_id = ? AND device_id = ?"
    " ORDER BY last_used_ts DESC, conn_key DESC LIMIT ?)"
)
_DELETE_IDLE = (
    "DELETE FROM sliding_sync_connections WHERE user_id = ? AND last_used_ts < ?"
)
_UPDATE_LAST_USED = (
    "UPDATE sliding_sync_connections SET last_used_ts = ? WHERE conn_key = ?"
)
_INSERT_POSITION = "INSERT INTO sliding_sync_positions (conn_key, list_counts) VALUES (?, ?)"
_SELECT_LIST_COUNTS = "SELECT list_counts FROM sliding_sync_positions WHERE position = ?"
_COPY_ROOMS = (
    "INSERT INTO sliding_sync_rooms (position, room_id, sent_to, timeline_limit, required_state)"
    " SELECT ?, room_id, sent_to, timeline_limit, required_state FROM sliding_sync_rooms"
    " WHERE position = ?"
)
_UPSERT_ROOM = (
    "INSERT INTO sliding_sync_rooms (position, room_id, sent_to, timeline_limit, required_state)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (position, room_id) DO UPDATE SET"
    " sent_to = excluded.sent_to, timeline_limit = excluded.timeline_limit,"
    " required_state = excluded.required_state"
)


async def select_connection(
    conn: aiosqlite.Connection, user_id: str, device_id: str, conn_id: str
) -> Connection | None:
    async with conn.execute(_SELECT_CONNECTION, (user_id, device_id, conn_id)) as cur:
        row = await cur.fetchone()
    return Connection(int(row[0]), int(row[1])) if row is not None else None


async def select_position_rooms(
    conn: aiosqlite.Connection, conn_key: int, position: int
) -> dict[str, SentRoom] | None:
    """The rooms sent as of a position of the connection; None if it has no such position."""
    async with conn.execute(_SELECT_POSITION, (position, conn_key)) as cur:
        if await cur.fetchone() is None:
            return None
    async with conn.execute(_SELECT_ROOMS, (position,)) as cur:
        rows = await cur.fetchall()
    return {r[0]: SentRoom(r[0], int(r[1]), int(r[2]), r[3]) for r in rows}


async def select_position_list_counts(conn: aiosqlite.Connection, position: int) -> str | None:
    """The lists' counts (JSON, as the sync layer wrote it) a position sent; None if unknown."""
    async with conn.execute(_SELECT_LIST_COUNTS, (position,)) as cur:
        row = await cur.fetchone()
    return row[0] if row is not None else None


async def insert_connection(
    conn: aiosqlite.Connection, user_id: str, device_id: str, conn_id: str, now_ms: int
) -> int:
    """A new connection, replacing the one with the same (user, device, conn_id) if any."""
    await conn.execute(_DELETE_CONNECTION, (user_id, device_id, conn_id))
    cur = await conn.execute(
        _INSERT_CONNECTION, (user_id, device_id, conn_id, now_ms, now_ms)
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


async def delete_connection(
    conn: aiosqlite.Connection, user_id: str, device_id: str, conn_id: str
) -> None:
    await conn.execute(_DELETE_CONNECTION, (user_id, device_id, conn_id))


async def delete_other_positions(
    conn: aiosqlite.Connection, conn_key: int, keep: int
) -> None:
    await conn.execute(_DELETE_OTHER_POSITIONS, (conn_key, keep))


async def delete_device_connections(
    conn: aiosqlite.Connection, user_id: str, device_id: str
) -> None:
    """A deleted device's connections (and, by cascade, what they were sent)."""
    await conn.execute(_DELETE_DEVICE, (user_id, device_id))


async def delete_excess_connections(
    conn: aiosqlite.Connection, user_id: str, device_id: str, keep: int
) -> None:
    """Keep the device's `keep` most recently used connections, delete the others."""
    await conn.execute(_DELETE_EXCESS, (user_id, device_id, user_id, device_id, keep))


async def delete_idle_connections(
    conn: aiosqlite.Connection, user_id: str, unused_since_ms: int
) -> None:
    await conn.execute(_DELETE_IDLE, (user_id, unused_since_ms))


async def update_last_used(
    conn: aiosqlite.Connection, conn_key: int, now_ms: int
) -> None:
    await conn.execute(_UPDATE_LAST_USED, (now_ms, conn_key))


async def insert_position(
    conn: aiosqlite.Connection,
    conn_key: int,
    copy_from: int | None,
    changed: Sequence[SentRoom],
    list_counts: str | None = None,
) -> int:
    """A new position holding the rooms of `copy_from` (if any) updated by `changed`, and the
    lists' counts it sends."""
    cur = await conn.execute(_INSERT_POSITION, (conn_key, list_counts))
    assert cur.lastrowid is not None
    position = int(cur.lastrowid)
    if copy_from is not None:
        await conn.execute(_COPY_ROOMS, (position, copy_from))
    await conn.executemany(
        _UPSERT_ROOM,
        [
            (position, r.room_id, r.sent_to, r.timeline_limit, r.required_state)
            for r in changed
        ],
    )
    return position
