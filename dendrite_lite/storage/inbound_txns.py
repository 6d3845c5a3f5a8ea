"""Answers to the transactions other servers sent us, keyed by (origin, txn_id)
(migrations/0009_federation_inbound_txns.sql): a retried transaction gets the same answer."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

__all__ = ["select_txn_response", "insert_txn_response", "delete_txns_before"]

SELECT_RESPONSE = "SELECT response_json FROM federation_inbound_txns WHERE origin = ? AND txn_id = ?"
INSERT_RESPONSE = (
    "INSERT OR IGNORE INTO federation_inbound_txns (origin, txn_id, response_json, received_ts)"
    " VALUES (?, ?, ?, ?)"
)
DELETE_BEFORE = "DELETE FROM federation_inbound_txns WHERE received_ts < ?"


async def select_txn_response(
    conn: aiosqlite.Connection, origin: str, txn_id: str
) -> dict[str, Any] | None:
    async with conn.execute(SELECT_RESPONSE, (origin, txn_id)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    value = json.loads(row[0])
    return value if isinstance(value, dict) else None


async def insert_txn_response(
    conn: aiosqlite.Connection, origin: str, txn_id: str, response: dict[str, Any], ts: int
) -> None:
    """Keeps the first answer if one is stored already."""
    await conn.execute(INSERT_RESPONSE, (origin, txn_id, json.dumps(response), ts))


async def delete_txns_before(conn: aiosqlite.Connection, ts: int) -> int:
    cur = await conn.execute(DELETE_BEFORE, (ts,))
    return cur.rowcount
