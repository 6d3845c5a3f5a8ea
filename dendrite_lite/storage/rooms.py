"""The rooms table: one row per room we know (schema in migrations/0002_rooms.sql)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.storage.room_changes import touch

__all__ = [
    "Room",
    "insert_room",
    "select_room",
    "update_current_state_group",
    "update_room_public",
    "select_public_room_ids",
]

INSERT_ROOM = (
    "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id) DO NOTHING"
)
SELECT_ROOM = (
    "SELECT room_id, room_version, creator, is_public, created_ts, current_state_group"
    " FROM rooms WHERE room_id = ?"
)
UPDATE_CURRENT_STATE_GROUP = "UPDATE rooms SET current_state_group = ? WHERE room_id = ?"
UPDATE_PUBLIC = "UPDATE rooms SET is_public = ? WHERE room_id = ?"
SELECT_PUBLIC_ROOM_IDS = "SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY room_id"


@dataclass(frozen=True, slots=True)
class Room:
    room_id: str
    room_version: str
    creator: str
    is_public: bool
    created_ts: int
    current_state_group: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Room:
        return cls(
            room_id=row["room_id"],
            room_version=row["room_version"],
            creator=row["creator"],
            is_public=bool(row["is_public"]),
            created_ts=row["created_ts"],
            current_state_group=row["current_state_group"],
        )


async def insert_room(
    conn: aiosqlite.Connection,
    *,
    room_id: str,
    room_version: str,
    creator: str,
    created_ts: int,
    is_public: bool = False,
) -> bool:
    """Insert a room; False (no change) if the room id exists already."""
    cur = await conn.execute(
        INSERT_ROOM, (room_id, room_version, creator, int(is_public), created_ts)
    )
    if cur.rowcount != 1:
        return False
    touch(room_id)
    return True


async def select_room(conn: aiosqlite.Connection, room_id: str) -> Room | None:
    async with conn.execute(SELECT_ROOM, (room_id,)) as cur:
        row = await cur.fetchone()
    return Room.from_row(row) if row is not None else None


async def update_current_state_group(
    conn: aiosqlite.Connection, room_id: str, state_group: int | None
) -> None:
    touch(room_id)
    await conn.execute(UPDATE_CURRENT_STATE_GROUP, (state_group, room_id))


async def update_room_public(conn: aiosqlite.Connection, room_id: str, is_public: bool) -> bool:
    cur = await conn.execute(UPDATE_PUBLIC, (int(is_public), room_id))
    return cur.rowcount == 1


async def select_public_room_ids(conn: aiosqlite.Connection) -> list[str]:
    async with conn.execute(SELECT_PUBLIC_ROOM_IDS) as cur:
        return [row[0] for row in await cur.fetchall()]
