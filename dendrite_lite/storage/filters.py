"""Stored /sync filters (POST /user/{userId}/filter), migration 0005.

Ids count up per user from 0. Uploading the same filter JSON again returns its existing id, so
clients that upload their filter on every start do not grow the table.
"""

from __future__ import annotations

import aiosqlite

__all__ = ["insert_filter", "select_filter"]

SELECT_BY_JSON = "SELECT filter_id FROM user_filters WHERE user_id = ? AND filter_json = ?"
SELECT_NEXT_ID = "SELECT COALESCE(MAX(filter_id) + 1, 0) FROM user_filters WHERE user_id = ?"
INSERT = "INSERT INTO user_filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)"
SELECT = "SELECT filter_json FROM user_filters WHERE user_id = ? AND filter_id = ?"


async def insert_filter(conn: aiosqlite.Connection, user_id: str, filter_json: str) -> int:
    """Store the filter (canonical JSON text) unless stored already; its id."""
    async with conn.execute(SELECT_BY_JSON, (user_id, filter_json)) as cur:
        row = await cur.fetchone()
    if row is not None:
        return int(row[0])
    async with conn.execute(SELECT_NEXT_ID, (user_id,)) as cur:
        row = await cur.fetchone()
    filter_id = int(row[0]) if row is not None else 0
    await conn.execute(INSERT, (user_id, filter_id, filter_json))
    return filter_id


async def select_filter(conn: aiosqlite.Connection, user_id: str, filter_id: int) -> str | None:
    async with conn.execute(SELECT, (user_id, filter_id)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None
