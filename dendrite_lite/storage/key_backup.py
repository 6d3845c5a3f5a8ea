"""Server-side key backups: backup versions and the room keys in them (schema in
migrations/0014_e2ee.sql)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.storage.e2e_keys import encode

__all__ = [
    "Backup",
    "RoomKey",
    "count_room_keys",
    "delete_room_keys",
    "insert_backup",
    "mark_backup_deleted",
    "select_backup",
    "select_latest_backup",
    "select_room_key",
    "select_room_keys",
    "touch_backup",
    "update_backup_auth_data",
    "upsert_room_key",
]

_BACKUP_COLUMNS = "version, algorithm, auth_data, etag, deleted"
SELECT_BACKUP = f"SELECT {_BACKUP_COLUMNS} FROM e2e_room_key_backups WHERE user_id = ? AND version = ?"
SELECT_LATEST = (
    f"SELECT {_BACKUP_COLUMNS} FROM e2e_room_key_backups WHERE user_id = ? AND deleted = 0"
    " ORDER BY version DESC LIMIT 1"
)
INSERT_BACKUP = (
    "INSERT INTO e2e_room_key_backups (user_id, version, algorithm, auth_data)"
    " SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3 FROM e2e_room_key_backups WHERE user_id = ?1"
    " RETURNING version"
)
UPDATE_AUTH_DATA = "UPDATE e2e_room_key_backups SET auth_data = ? WHERE user_id = ? AND version = ?"
TOUCH = "UPDATE e2e_room_key_backups SET etag = etag + 1 WHERE user_id = ? AND version = ?"
MARK_DELETED = "UPDATE e2e_room_key_backups SET deleted = 1 WHERE user_id = ? AND version = ?"

_KEY_COLUMNS = "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
UPSERT_KEY = (
    f"INSERT INTO e2e_room_keys (user_id, version, {_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
    " first_message_index = excluded.first_message_index,"
    " forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,"
    " session_data = excluded.session_data"
)
COUNT_KEYS = "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = ? AND version = ?"


@dataclass(frozen=True, slots=True)
class Backup:
    version: int
    algorithm: str
    auth_data: Any
    etag: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class RoomKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "first_message_index": self.first_message_index,
            "forwarded_count": self.forwarded_count,
            "is_verified": self.is_verified,
            "session_data": self.session_data,
        }


def _backup(row: Any) -> Backup:
    return Backup(int(row[0]), row[1], json.loads(row[2]), int(row[3]), bool(row[4]))


def _room_key(row: Any) -> RoomKey:
    return RoomKey(row[0], row[1], int(row[2]), int(row[3]), bool(row[4]), json.loads(row[5]))


async def select_backup(conn: aiosqlite.Connection, user_id: str, version: int) -> Backup | None:
    """The backup, deleted or not; None if it never existed."""
    async with conn.execute(SELECT_BACKUP, (user_id, version)) as cur:
        row = await cur.fetchone()
    return _backup(row) if row is not None else None


async def select_latest_backup(conn: aiosqlite.Connection, user_id: str) -> Backup | None:
    """The newest backup not deleted."""
    async with conn.execute(SELECT_LATEST, (user_id,)) as cur:
        row = await cur.fetchone()
    return _backup(row) if row is not None else None


async def insert_backup(
    conn: aiosqlite.Connection, user_id: str, algorithm: str, auth_data: Any
) -> int:
    """A new backup with the next version of the user (never reused); returns the version."""
    async with conn.execute(INSERT_BACKUP, (user_id, algorithm, encode(auth_data))) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def update_backup_auth_data(
    conn: aiosqlite.Connection, user_id: str, version: int, auth_data: Any
) -> None:
    await conn.execute(UPDATE_AUTH_DATA, (encode(auth_data), user_id, version))


async def touch_backup(conn: aiosqlite.Connection, user_id: str, version: int) -> None:
    """The backup's keys changed: a new etag."""
    await conn.execute(TOUCH, (user_id, version))


async def mark_backup_deleted(conn: aiosqlite.Connection, user_id: str, version: int) -> None:
    await conn.execute(MARK_DELETED, (user_id, version))
    await delete_room_keys(conn, user_id, version)


async def count_room_keys(conn: aiosqlite.Connection, user_id: str, version: int) -> int:
    async with conn.execute(COUNT_KEYS, (user_id, version)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


def _where(room_id: str | None, session_id: str | None) -> tuple[str, list[str]]:
    sql, params = "user_id = ? AND version = ?", []
    if room_id is not None:
        sql, params = sql + " AND room_id = ?", [room_id]
        if session_id is not None:
            sql, params = sql + " AND session_id = ?", [room_id, session_id]
    return sql, params


async def select_room_keys(
    conn: aiosqlite.Connection,
    user_id: str,
    version: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> list[RoomKey]:
    """The backup's keys: all, of one room, or one session."""
    where, params = _where(room_id, session_id)
    sql = f"SELECT {_KEY_COLUMNS} FROM e2e_room_keys WHERE {where} ORDER BY room_id, session_id"
    async with conn.execute(sql, (user_id, version, *params)) as cur:
        return [_room_key(r) for r in await cur.fetchall()]


async def select_room_key(
    conn: aiosqlite.Connection, user_id: str, version: int, room_id: str, session_id: str
) -> RoomKey | None:
    found = await select_room_keys(conn, user_id, version, room_id, session_id)
    return found[0] if found else None


async def upsert_room_key(conn: aiosqlite.Connection, user_id: str, version: int, key: RoomKey) -> None:
    await conn.execute(
        UPSERT_KEY,
        (
            user_id, version, key.room_id, key.session_id, key.first_message_index,
            key.forwarded_count, int(key.is_verified), encode(key.session_data),
        ),
    )


async def delete_room_keys(
    conn: aiosqlite.Connection,
    user_id: str,
    version: int,
    room_id: str | None = None,
    session_id: str | None = None,
) -> int:
    """Delete the backup's keys (all, of one room, or one session); returns how many went."""
    where, params = _where(room_id, session_id)
    cur = await conn.execute(f"DELETE FROM e2e_room_keys WHERE {where}", (user_id, version, *params))
    return cur.rowcount
