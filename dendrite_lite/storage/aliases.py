"""Local room aliases and forgotten rooms (schema in migrations/0004_room_aliases.sql)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "RoomAlias",
    "insert_alias",
    "select_alias",
    "select_aliases_for_room",
    "delete_alias",
    "update_aliases_room",
    "insert_forgotten",
    "select_forgotten_room_ids",
    "select_is_forgotten",
]

INSERT_ALIAS = (
    "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (alias) DO NOTHING"
)
SELECT_ALIAS = "SELECT alias, room_id, creator, created_ts FROM room_aliases WHERE alias = ?"
SELECT_ALIASES_FOR_ROOM = "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias"
DELETE_ALIAS = "DELETE FROM room_aliases WHERE alias = ?"
UPDATE_ALIASES_ROOM = "UPDATE room_aliases SET room_id = ? WHERE room_id = ?"
UPSERT_FORGOTTEN = (
    "INSERT INTO forgotten_rooms (user_id, room_id, member_event_id) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id, room_id) DO UPDATE SET member_event_id = excluded.member_event_id"
)
# Forgotten = the user's membership is still the very event they forgot.
_FORGOTTEN_JOIN = (
    "FROM forgotten_rooms f JOIN current_state c ON c.room_id = f.room_id"
    " AND c.type = 'm.room.member' AND c.state_key = f.user_id"
    " AND c.event_id = f.member_event_id WHERE f.user_id = ?"
)
SELECT_FORGOTTEN = f"SELECT f.room_id {_FORGOTTEN_JOIN} ORDER BY f.room_id"
SELECT_IS_FORGOTTEN = f"SELECT 1 {_FORGOTTEN_JOIN} AND f.room_id = ?"


@dataclass(frozen=True, slots=True)
class RoomAlias:
    alias: str
    room_id: str
    creator: str
    created_ts: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RoomAlias:
        return cls(row["alias"], row["room_id"], row["creator"], row["created_ts"])


async def insert_alias(
    conn: aiosqlite.Connection, alias: str, room_id: str, creator: str, created_ts: int
) -> bool:
    """Map alias -> room_id; False (nothing changed) if the alias exists already."""
    cur = await conn.execute(INSERT_ALIAS, (alias, room_id, creator, created_ts))
    return cur.rowcount == 1


async def select_alias(conn: aiosqlite.Connection, alias: str) -> RoomAlias | None:
    async with conn.execute(SELECT_ALIAS, (alias,)) as cur:
        row = await cur.fetchone()
    return RoomAlias.from_row(row) if row is not None else None


async def select_aliases_for_room(conn: aiosqlite.Connection, room_id: str) -> list[str]:
    async with conn.execute(SELECT_ALIASES_FOR_ROOM, (room_id,)) as cur:
        return [row[0] for row in await cur.fetchall()]


async def delete_alias(conn: aiosqlite.Connection, alias: str) -> bool:
    cur = await conn.execute(DELETE_ALIAS, (alias,))
    return cur.rowcount == 1


async def update_aliases_room(conn: aiosqlite.Connection, old_room_id: str, new_room_id: str) -> int:
    """Point every alias of old_room_id at new_room_id (room upgrades); returns how many."""
    cur = await conn.execute(UPDATE_ALIASES_ROOM, (new_room_id, old_room_id))
    return cur.rowcount


async def insert_forgotten(
    conn: aiosqlite.Connection, user_id: str, room_id: str, member_event_id: str
) -> None:
    await conn.execute(UPSERT_FORGOTTEN, (user_id, room_id, member_event_id))


async def select_forgotten_room_ids(conn: aiosqlite.Connection, user_id: str) -> list[str]:
    """Rooms the user forgot and has had no membership change in since."""
    async with conn.execute(SELECT_FORGOTTEN, (user_id,)) as cur:
        return [row[0] for row in await cur.fetchall()]


async def select_is_forgotten(conn: aiosqlite.Connection, user_id: str, room_id: str) -> bool:
    async with conn.execute(SELECT_IS_FORGOTTEN, (user_id, room_id)) as cur:
        return await cur.fetchone() is not None
