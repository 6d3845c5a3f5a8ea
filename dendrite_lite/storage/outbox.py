"""The federation outbox: PDUs and persisted EDUs waiting for each destination.

Schema in migrations/0008_federation_outbox.sql. A row leaves the table only when the
destination acknowledged a transaction carrying it (`delete_outbox_rows`), so a restart resumes
exactly where the last acknowledged transaction ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "OutboxPdu",
    "OutboxEdu",
    "insert_outbox_pdus",
    "insert_outbox_edus",
    "select_outbox_pdus",
    "select_outbox_edus",
    "delete_outbox_rows",
    "select_pending_destinations",
    "select_pending_counts",
    "select_joined_servers",
    "select_servers_sharing_rooms",
    "select_memberships",
]


@dataclass(frozen=True, slots=True)
class OutboxPdu:
    position: int
    event_id: str


@dataclass(frozen=True, slots=True)
class OutboxEdu:
    position: int
    edu_type: str
    content: Mapping[str, Any]


INSERT_PDU = (
    "INSERT INTO federation_outbox (destination, event_id, queued_ts) VALUES (?, ?, ?)"
)
INSERT_EDU = (
    "INSERT INTO federation_outbox (destination, edu_type, edu_content, queued_ts)"
    " VALUES (?, ?, ?, ?)"
)
SELECT_PDUS = (
    "SELECT position, event_id FROM federation_outbox"
    " WHERE destination = ? AND event_id IS NOT NULL ORDER BY position LIMIT ?"
)
SELECT_EDUS = (
    "SELECT position, edu_type, edu_content FROM federation_outbox"
    " WHERE destination = ? AND edu_type IS NOT NULL ORDER BY position LIMIT ?"
)
SELECT_PENDING_DESTINATIONS = "SELECT DISTINCT destination FROM federation_outbox ORDER BY destination"
SELECT_PENDING_COUNTS = (
    "SELECT destination, COUNT(*) FROM federation_outbox GROUP BY destination"
)
SELECT_PENDING_COUNT = "SELECT COUNT(*) FROM federation_outbox WHERE destination = ?"
# The server name of a user id is everything after its first colon.
SELECT_JOINED_SERVERS = (
    "SELECT DISTINCT substr(state_key, instr(state_key, ':') + 1) FROM current_state"
    " WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'"
)


async def insert_outbox_pdus(
    conn: aiosqlite.Connection,
    rows: Iterable[tuple[str, str]],
    queued_ts: int,
) -> None:
    """Queue (destination, event_id) pairs, in the order given (it becomes the send order)."""
    await conn.executemany(INSERT_PDU, [(d, e, queued_ts) for d, e in rows])


async def insert_outbox_edus(
    conn: aiosqlite.Connection,
    destinations: Iterable[str],
    edu_type: str,
    content: Mapping[str, Any],
    queued_ts: int,
) -> None:
    encoded = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
    await conn.executemany(INSERT_EDU, [(d, edu_type, encoded, queued_ts) for d in destinations])


async def select_outbox_pdus(
    conn: aiosqlite.Connection, destination: str, limit: int
) -> list[OutboxPdu]:
    async with conn.execute(SELECT_PDUS, (destination, limit)) as cur:
        return [OutboxPdu(row[0], row[1]) for row in await cur.fetchall()]


async def select_outbox_edus(
    conn: aiosqlite.Connection, destination: str, limit: int
) -> list[OutboxEdu]:
    async with conn.execute(SELECT_EDUS, (destination, limit)) as cur:
        return [OutboxEdu(row[0], row[1], json.loads(row[2])) for row in await cur.fetchall()]


async def delete_outbox_rows(conn: aiosqlite.Connection, positions: Sequence[int]) -> None:
    await conn.executemany(
        "DELETE FROM federation_outbox WHERE position = ?", [(p,) for p in positions]
    )


async def select_pending_destinations(conn: aiosqlite.Connection) -> list[str]:
    async with conn.execute(SELECT_PENDING_DESTINATIONS) as cur:
        return [row[0] for row in await cur.fetchall()]


async def select_pending_counts(
    conn: aiosqlite.Connection, destination: str | None = None
) -> dict[str, int]:
    """Rows still queued per destination (only destinations with any)."""
    if destination is not None:
        async with conn.execute(SELECT_PENDING_COUNT, (destination,)) as cur:
            row = await cur.fetchone()
        count = int(row[0]) if row is not None else 0
        return {destination: count} if count else {}
    async with conn.execute(SELECT_PENDING_COUNTS) as cur:
        return {row[0]: int(row[1]) for row in await cur.fetchall()}


async def select_joined_servers(conn: aiosqlite.Connection, room_id: str) -> set[str]:
    """The servers of the room's joined members, from the current state."""
    async with conn.execute(SELECT_JOINED_SERVERS, (room_id,)) as cur:
        return {row[0] for row in await cur.fetchall()}


# The servers of everyone joined to a room `user_id` is joined to (presence goes to them).
SELECT_SERVERS_SHARING = (
    "SELECT DISTINCT substr(other.state_key, instr(other.state_key, ':') + 1)"
    " FROM current_state AS mine JOIN current_state AS other ON other.room_id = mine.room_id"
    " WHERE mine.state_key = ? AND mine.type = 'm.room.member' AND mine.membership = 'join'"
    " AND other.type = 'm.room.member' AND other.membership = 'join'"
)


async def select_servers_sharing_rooms(conn: aiosqlite.Connection, user_id: str) -> set[str]:
    async with conn.execute(SELECT_SERVERS_SHARING, (user_id,)) as cur:
        return {row[0] for row in await cur.fetchall()}


async def select_memberships(
    conn: aiosqlite.Connection, room_id: str, user_ids: Sequence[str]
) -> dict[str, str | None]:
    """The current membership of each of user_ids (users with no member event are absent)."""
    if not user_ids:
        return {}
    marks = ",".join("?" * len(user_ids))
    sql = (
        "SELECT state_key, membership FROM current_state WHERE room_id = ?"
        f" AND type = 'm.room.member' AND state_key IN ({marks})"
    )
    async with conn.execute(sql, (room_id, *user_ids)) as cur:
        return {row[0]: row[1] for row in await cur.fetchall()}
