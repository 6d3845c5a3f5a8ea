"""The presence table (migrations/0006_user_data.sql) and the "who shares a room" queries.

Every state change gets the next position of the presence stream (MAX(stream_id) + 1 in the
writing transaction; rows are only updated, never deleted).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "PresenceRow",
    "select_max_stream_id",
    "select_presence",
    "select_presence_since",
    "select_live_presence",
    "upsert_presence",
    "select_users_sharing_room",
    "select_share_a_room",
]

_CHUNK = 500
_COLUMNS = "user_id, state, status_msg, last_active_ts, currently_active, stream_id"

SELECT_MAX = "SELECT COALESCE(MAX(stream_id), 0) FROM presence"
SELECT_ONE = f"SELECT {_COLUMNS} FROM presence WHERE user_id = ?"
SELECT_SINCE = f"SELECT {_COLUMNS} FROM presence WHERE stream_id > ? AND user_id IN ({{}})"
SELECT_LIVE = f"SELECT {_COLUMNS} FROM presence WHERE state != 'offline'"
UPSERT = (
    "INSERT INTO presence (user_id, state, status_msg, last_active_ts, currently_active, stream_id)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET state = excluded.state,"
    " status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,"
    " currently_active = excluded.currently_active, stream_id = excluded.stream_id"
)
# Joined members of the rooms the user is joined to (the user included), via current_state.
SELECT_SHARING = (
    "SELECT DISTINCT b.state_key FROM current_state a JOIN current_state b"
    " ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.membership = 'join'"
    " WHERE a.state_key = ? AND a.type = 'm.room.member' AND a.membership = 'join'"
)
SELECT_SHARE_A_ROOM = (
    "SELECT 1 FROM current_state a JOIN current_state b"
    " ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.state_key = ?"
    " AND b.membership = 'join'"
    " WHERE a.state_key = ? AND a.type = 'm.room.member' AND a.membership = 'join' LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class PresenceRow:
    user_id: str
    state: str  # online | unavailable | offline
    status_msg: str | None
    last_active_ts: int
    currently_active: bool
    stream_id: int


def _row(row: sqlite3.Row) -> PresenceRow:
    return PresenceRow(
        user_id=row["user_id"],
        state=row["state"],
        status_msg=row["status_msg"],
        last_active_ts=row["last_active_ts"],
        currently_active=bool(row["currently_active"]),
        stream_id=row["stream_id"],
    )


async def select_max_stream_id(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_MAX) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_presence(conn: aiosqlite.Connection, user_id: str) -> PresenceRow | None:
    async with conn.execute(SELECT_ONE, (user_id,)) as cur:
        row = await cur.fetchone()
    return _row(row) if row is not None else None


async def select_presence_since(
    conn: aiosqlite.Connection, user_ids: Sequence[str], since: int
) -> list[PresenceRow]:
    """Rows of these users changed after `since`, in stream order."""
    out: list[PresenceRow] = []
    for i in range(0, len(user_ids), _CHUNK):
        chunk = user_ids[i : i + _CHUNK]
        sql = SELECT_SINCE.format(", ".join("?" * len(chunk)))
        async with conn.execute(sql, (since, *chunk)) as cur:
            out.extend(_row(r) for r in await cur.fetchall())
    out.sort(key=lambda r: r.stream_id)
    return out


async def select_live_presence(conn: aiosqlite.Connection) -> list[PresenceRow]:
    """Every user not offline (the ones idle and sync timeouts may still apply to)."""
    async with conn.execute(SELECT_LIVE) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def upsert_presence(
    conn: aiosqlite.Connection,
    *,
    user_id: str,
    state: str,
    status_msg: str | None,
    last_active_ts: int,
    currently_active: bool,
) -> PresenceRow:
    stream_id = await select_max_stream_id(conn) + 1
    await conn.execute(
        UPSERT, (user_id, state, status_msg, last_active_ts, int(currently_active), stream_id)
    )
    return PresenceRow(user_id, state, status_msg, last_active_ts, currently_active, stream_id)


async def select_users_sharing_room(conn: aiosqlite.Connection, user_id: str) -> set[str]:
    """Users joined to at least one room the user is joined to (the user too, if joined anywhere)."""
    async with conn.execute(SELECT_SHARING, (user_id,)) as cur:
        return {row[0] for row in await cur.fetchall()}


async def select_share_a_room(conn: aiosqlite.Connection, user_a: str, user_b: str) -> bool:
    async with conn.execute(SELECT_SHARE_A_ROOM, (user_b, user_a)) as cur:
        return await cur.fetchone() is not None
