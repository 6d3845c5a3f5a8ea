"""The state of email pushers (schema in migrations/0040_email_pushers.sql; the pushers
themselves are storage/pushers.py's rows of kind "email"): each one's position in its user's
notifications, its unsubscribe token, and when it last mailed about each room.

The position starts at the newest event when the pusher is made, so turning email
notifications on never mails about the past (as Synapse does).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "EmailPusher",
    "delete_address_pushers",
    "delete_by_token",
    "insert_email_pusher",
    "select_email_pushers",
    "select_room_last_sent",
    "update_mailed",
    "update_position",
]

# OR IGNORE: setting the pusher again keeps its position and its token (links already mailed).
INSERT = (
    "INSERT OR IGNORE INTO email_pushers"
    " (app_id, pushkey, user_id, last_stream_ordering, unsubscribe_token)"
    " VALUES (?, ?, ?, (SELECT COALESCE(MAX(stream_ordering), 0) FROM events), ?)"
)
SELECT_ALL = (
    "SELECT p.user_id, p.app_id, p.pushkey, p.data, e.last_stream_ordering, e.unsubscribe_token"
    " FROM pushers p JOIN email_pushers e"
    " ON e.app_id = p.app_id AND e.pushkey = p.pushkey AND e.user_id = p.user_id"
    " WHERE p.kind = 'email' ORDER BY p.user_id, p.pushkey"
)
_KEY = "app_id = ? AND pushkey = ? AND user_id = ?"
UPSERT_ROOM = (
    "INSERT INTO email_pusher_rooms (app_id, pushkey, user_id, room_id, last_sent_ts)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, pushkey, user_id, room_id)"
    " DO UPDATE SET last_sent_ts = excluded.last_sent_ts"
)


@dataclass(frozen=True, slots=True)
class EmailPusher:
    user_id: str
    app_id: str
    pushkey: str  # the address, as users.threepids.canonical_address keeps it
    data: dict[str, Any]
    last_stream_ordering: int
    unsubscribe_token: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.app_id, self.pushkey, self.user_id)


async def insert_email_pusher(
    conn: aiosqlite.Connection, user_id: str, app_id: str, pushkey: str, token: str
) -> None:
    """The state of a pusher just written to `pushers` (same transaction)."""
    await conn.execute(INSERT, (app_id, pushkey, user_id, token))


async def select_email_pushers(conn: aiosqlite.Connection) -> list[EmailPusher]:
    async with conn.execute(SELECT_ALL) as cur:
        rows = await cur.fetchall()
    return [EmailPusher(r[0], r[1], r[2], json.loads(r[3]), int(r[4]), r[5]) for r in rows]


async def select_room_last_sent(
    conn: aiosqlite.Connection, key: tuple[str, str, str]
) -> dict[str, int]:
    """room_id -> when the pusher last mailed about it (ms)."""
    sql = f"SELECT room_id, last_sent_ts FROM email_pusher_rooms WHERE {_KEY}"
    async with conn.execute(sql, key) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


async def update_position(
    conn: aiosqlite.Connection, key: tuple[str, str, str], position: int
) -> None:
    """Never moves back: two passes cannot undo each other."""
    await conn.execute(
        f"UPDATE email_pushers SET last_stream_ordering = MAX(last_stream_ordering, ?)"
        f" WHERE {_KEY}",
        (position, *key),
    )


async def update_mailed(
    conn: aiosqlite.Connection,
    key: tuple[str, str, str],
    position: int,
    room_ids: Iterable[str],
    now_ms: int,
) -> None:
    """A mail went out: the position moves past what it covered and its rooms' throttle
    starts (nothing, if the pusher was deleted meanwhile)."""
    await update_position(conn, key, position)
    sql = f"SELECT 1 FROM email_pushers WHERE {_KEY}"
    async with conn.execute(sql, key) as cur:
        if await cur.fetchone() is None:
            return
    await conn.executemany(UPSERT_ROOM, [(*key, room_id, now_ms) for room_id in room_ids])


async def delete_by_token(conn: aiosqlite.Connection, token: str) -> tuple[str, str] | None:
    """Delete the email pusher of an unsubscribe link: (user_id, address), None if no such."""
    sql = "SELECT app_id, pushkey, user_id FROM email_pushers WHERE unsubscribe_token = ?"
    async with conn.execute(sql, (token,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute(f"DELETE FROM pushers WHERE {_KEY}", tuple(row))
    return str(row[2]), str(row[1])


async def delete_address_pushers(conn: aiosqlite.Connection, user_id: str, address: str) -> None:
    """The user's email pushers to an address leaving the account."""
    await conn.execute(
        "DELETE FROM pushers WHERE user_id = ? AND kind = 'email' AND pushkey = ?",
        (user_id, address),
    )
