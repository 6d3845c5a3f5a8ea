"""Rooms a server admin blocked (schema in migrations/0027_blocked_rooms.sql)."""

from __future__ import annotations

import aiosqlite

__all__ = ["delete_blocked_room", "insert_blocked_room", "select_room_blocker"]

UPSERT_BLOCKED = (
    "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES (?, ?, ?)"
    " ON CONFLICT (room_id) DO NOTHING"
)
DELETE_BLOCKED = "DELETE FROM blocked_rooms WHERE room_id = ?"
SELECT_BLOCKER = "SELECT user_id FROM blocked_rooms WHERE room_id = ?"


async def insert_blocked_room(
    conn: aiosqlite.Connection, room_id: str, user_id: str, ts: int
) -> None:
    """Block a room; blocking it again keeps the first blocker."""
    await conn.execute(UPSERT_BLOCKED, (room_id, user_id, ts))


async def delete_blocked_room(conn: aiosqlite.Connection, room_id: str) -> None:
    await conn.execute(DELETE_BLOCKED, (room_id,))


async def select_room_blocker(conn: aiosqlite.Connection, room_id: str) -> str | None:
    """Who blocked the room ('' for the admin socket), or None when it is not blocked."""
    async with conn.execute(SELECT_BLOCKER, (room_id,)) as cur:
        row = await cur.fetchone()
    return row[0] if row is not None else None
