"""The to-device inbox and the sendToDevice transaction ids (schema in migrations/0014_e2ee.sql).

A message stays in the inbox until a /sync of its device acknowledges it (send_to_device.md
§Server behaviour): `delete_acknowledged` removes what a `since` position covers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.storage.device_lists import select_position
from dendrite_lite.storage.e2e_keys import encode

__all__ = [
    "INBOX",
    "Delivery",
    "delete_acknowledged",
    "delete_device_inbox",
    "insert_messages",
    "insert_txn",
    "select_has_acknowledged",
    "select_inbox_position",
    "select_messages",
]

INBOX = "to_device_inbox"
# Transaction ids are remembered this long: a client retries a request within minutes.
TXN_LIFETIME_MS = 24 * 3600 * 1000

INSERT_MESSAGE = "INSERT INTO to_device_inbox (user_id, device_id, message_json) VALUES (?, ?, ?)"
SELECT_MESSAGES = (
    "SELECT stream_id, message_json FROM to_device_inbox WHERE user_id = ? AND device_id = ?"
    " AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?"
)
SELECT_HAS_ACKED = (
    "SELECT 1 FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ? LIMIT 1"
)
DELETE_ACKED = "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?"
DELETE_DEVICE = "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ?"
DELETE_DEVICE_TXNS = "DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ?"
PRUNE_TXNS = "DELETE FROM to_device_txns WHERE created_ts < ?"
INSERT_TXN = (
    "INSERT INTO to_device_txns (user_id, device_id, txn_id, created_ts) VALUES (?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Messages for one device: the events, oldest first, and the position of the last one."""

    events: list[dict[str, Any]]
    last_position: int


async def insert_messages(
    conn: aiosqlite.Connection, rows: Sequence[tuple[str, str, dict[str, Any]]]
) -> None:
    """(user_id, device_id, message) rows, in this order in the stream."""
    await conn.executemany(INSERT_MESSAGE, [(u, d, encode(m)) for u, d, m in rows])


async def select_messages(
    conn: aiosqlite.Connection, user_id: str, device_id: str, since: int, until: int, limit: int
) -> Delivery:
    async with conn.execute(SELECT_MESSAGES, (user_id, device_id, since, until, limit)) as cur:
        rows = await cur.fetchall()
    return Delivery([json.loads(r[1]) for r in rows], rows[-1][0] if rows else since)


async def select_has_acknowledged(
    conn: aiosqlite.Connection, user_id: str, device_id: str, position: int
) -> bool:
    """Whether messages at or before `position` are still stored for the device."""
    async with conn.execute(SELECT_HAS_ACKED, (user_id, device_id, position)) as cur:
        return await cur.fetchone() is not None


async def delete_acknowledged(
    conn: aiosqlite.Connection, user_id: str, device_id: str, position: int
) -> None:
    await conn.execute(DELETE_ACKED, (user_id, device_id, position))


async def delete_device_inbox(conn: aiosqlite.Connection, user_id: str, device_id: str) -> None:
    """A deleted device's pending messages and remembered transaction ids."""
    await conn.execute(DELETE_DEVICE, (user_id, device_id))
    await conn.execute(DELETE_DEVICE_TXNS, (user_id, device_id))


async def insert_txn(
    conn: aiosqlite.Connection, user_id: str, device_id: str, txn_id: str, now_ms: int
) -> bool:
    """Remember a transaction id; False when the device already used it (a retry). Ids older
    than TXN_LIFETIME_MS are forgotten first."""
    await conn.execute(PRUNE_TXNS, (now_ms - TXN_LIFETIME_MS,))
    cur = await conn.execute(INSERT_TXN, (user_id, device_id, txn_id, now_ms))
    return cur.rowcount > 0


async def select_inbox_position(conn: aiosqlite.Connection) -> int:
    """The to-device stream position: the last message id ever handed out."""
    return await select_position(conn, INBOX)
