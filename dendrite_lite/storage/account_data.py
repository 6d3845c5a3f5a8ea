"""The account_data table: global and per-room account data (schema in migrations/0006_user_data.sql).

Global account data has room_id ''. Every write gets the next position of the account data
stream (MAX(stream_id) + 1 in the writing transaction; rows are never deleted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "GLOBAL",
    "AccountDataRow",
    "select_account_data",
    "select_account_data_since",
    "select_max_stream_id",
    "upsert_account_data",
    "update_account_data",
]

GLOBAL = ""  # the room_id of global account data

SELECT_ONE = "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?"
SELECT_SINCE = (
    "SELECT room_id, type, content, stream_id FROM account_data"
    " WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id"
)
SELECT_MAX = "SELECT COALESCE(MAX(stream_id), 0) FROM account_data"
UPSERT = (
    "INSERT INTO account_data (user_id, room_id, type, content, stream_id) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, room_id, type)"
    " DO UPDATE SET content = excluded.content, stream_id = excluded.stream_id"
)


@dataclass(frozen=True, slots=True)
class AccountDataRow:
    room_id: str  # GLOBAL for global account data
    type: str
    content: dict[str, Any]
    stream_id: int


async def select_max_stream_id(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_MAX) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_account_data(
    conn: aiosqlite.Connection, user_id: str, room_id: str, data_type: str
) -> dict[str, Any] | None:
    async with conn.execute(SELECT_ONE, (user_id, room_id, data_type)) as cur:
        row = await cur.fetchone()
    return json.loads(row[0]) if row is not None else None


async def select_account_data_since(
    conn: aiosqlite.Connection, user_id: str, since: int, until: int
) -> list[AccountDataRow]:
    """The user's rows written after `since` up to and including `until`, oldest first."""
    async with conn.execute(SELECT_SINCE, (user_id, since, until)) as cur:
        rows = await cur.fetchall()
    return [AccountDataRow(r[0], r[1], json.loads(r[2]), int(r[3])) for r in rows]


async def upsert_account_data(
    conn: aiosqlite.Connection, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
) -> int:
    """Store content (replacing any previous value); returns its new stream position."""
    stream_id = await select_max_stream_id(conn) + 1
    encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    await conn.execute(UPSERT, (user_id, room_id, data_type, encoded, stream_id))
    return stream_id


async def update_account_data(
    conn: aiosqlite.Connection,
    user_id: str,
    room_id: str,
    data_type: str,
    edit: Callable[[dict[str, Any] | None], dict[str, Any] | None],
) -> int | None:
    """Read-modify-write in one transaction: store edit(old content).

    `edit` returning None means "no change" (no write, no new position; returns None). It runs
    inside the write transaction, so it must be quick and pure; an exception it raises aborts the
    write.
    """
    new = edit(await select_account_data(conn, user_id, room_id, data_type))
    if new is None:
        return None
    return await upsert_account_data(conn, user_id, room_id, data_type, new)
