"""Per-destination federation health: last success/failure and the current backoff.

Schema in migrations/0008_federation_outbox.sql (`federation_destinations`). The sender writes a
row after every transaction attempt; the TUI and `doctor` read them (with the outbox's pending
counts) through federation.destinations.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "DestinationRow",
    "select_destination",
    "select_destination_rooms",
    "select_destinations",
    "update_destination_alive",
    "upsert_destination_failure",
    "upsert_destination_success",
]


@dataclass(frozen=True, slots=True)
class DestinationRow:
    destination: str
    last_success_ts: int | None
    last_failure_ts: int | None
    last_failure_reason: str | None
    retry_interval_ms: int  # 0: not backing off
    next_retry_ts: int  # 0: may send now

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DestinationRow:
        return cls(
            destination=row["destination"],
            last_success_ts=row["last_success_ts"],
            last_failure_ts=row["last_failure_ts"],
            last_failure_reason=row["last_failure_reason"],
            retry_interval_ms=row["retry_interval_ms"],
            next_retry_ts=row["next_retry_ts"],
        )


_COLUMNS = (
    "destination, last_success_ts, last_failure_ts, last_failure_reason,"
    " retry_interval_ms, next_retry_ts"
)
SELECT_ONE = f"SELECT {_COLUMNS} FROM federation_destinations WHERE destination = ?"
SELECT_ALL = f"SELECT {_COLUMNS} FROM federation_destinations ORDER BY destination"
UPSERT_SUCCESS = (
    "INSERT INTO federation_destinations (destination, last_success_ts) VALUES (?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET last_success_ts = excluded.last_success_ts,"
    " retry_interval_ms = 0, next_retry_ts = 0"
)
UPSERT_FAILURE = (
    "INSERT INTO federation_destinations"
    " (destination, last_failure_ts, last_failure_reason, retry_interval_ms, next_retry_ts)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET last_failure_ts = excluded.last_failure_ts,"
    " last_failure_reason = excluded.last_failure_reason,"
    " retry_interval_ms = excluded.retry_interval_ms, next_retry_ts = excluded.next_retry_ts"
)
# The server talked to us: whatever made us back off is over.
UPDATE_ALIVE = (
    "UPDATE federation_destinations SET retry_interval_ms = 0, next_retry_ts = 0"
    " WHERE destination = ? AND (retry_interval_ms != 0 OR next_retry_ts != 0)"
)


async def select_destination(conn: aiosqlite.Connection, destination: str) -> DestinationRow | None:
    async with conn.execute(SELECT_ONE, (destination,)) as cur:
        row = await cur.fetchone()
    return DestinationRow.from_row(row) if row is not None else None


async def select_destinations(conn: aiosqlite.Connection) -> list[DestinationRow]:
    async with conn.execute(SELECT_ALL) as cur:
        return [DestinationRow.from_row(row) for row in await cur.fetchall()]


async def upsert_destination_success(
    conn: aiosqlite.Connection, destination: str, now_ms: int
) -> None:
    await conn.execute(UPSERT_SUCCESS, (destination, now_ms))


async def upsert_destination_failure(
    conn: aiosqlite.Connection,
    destination: str,
    now_ms: int,
    reason: str,
    retry_interval_ms: int,
    next_retry_ts: int,
) -> None:
    await conn.execute(
        UPSERT_FAILURE, (destination, now_ms, reason[:1000], retry_interval_ms, next_retry_ts)
    )


async def update_destination_alive(conn: aiosqlite.Connection, destination: str) -> bool:
    """Clear the backoff of a destination; True if it was backing off."""
    cur = await conn.execute(UPDATE_ALIVE, (destination,))
    return cur.rowcount > 0


# The rooms where `destination` has a joined member (so it gets the room's events), each with the
# newest of our own events in it (0: none): what Synapse's destination_rooms records, the last
# event queued for the destination in the room (ours since it joined all were). The server name
# of a user id is everything after its first colon.
_SELECT_ROOMS = (
    "SELECT m.room_id, (SELECT COALESCE(MAX(e.stream_ordering), 0) FROM events AS e"
    "  WHERE e.room_id = m.room_id AND substr(e.sender, instr(e.sender, ':') + 1) = ?)"
    " FROM (SELECT DISTINCT room_id FROM current_state WHERE type = 'm.room.member'"
    "  AND membership = 'join' AND substr(state_key, instr(state_key, ':') + 1) = ?) AS m"
)


async def select_destination_rooms(
    conn: aiosqlite.Connection, destination: str, our_server: str, *, backwards: bool,
    offset: int, limit: int,
) -> tuple[list[tuple[str, int]], int]:
    """A page of (room_id, stream_ordering) shared with `destination`, by room id, and the
    count. A scan of current_state's members: an admin operation, not a hot path."""
    direction = "DESC" if backwards else "ASC"
    async with conn.execute(
        f"{_SELECT_ROOMS} ORDER BY m.room_id {direction} LIMIT ? OFFSET ?",
        (our_server, destination, limit, offset),
    ) as cur:
        page = [(str(r[0]), int(r[1])) for r in await cur.fetchall()]
    async with conn.execute(
        "SELECT COUNT(DISTINCT room_id) FROM current_state WHERE type = 'm.room.member'"
        " AND membership = 'join' AND substr(state_key, instr(state_key, ':') + 1) = ?",
        (destination,),
    ) as cur:
        row = await cur.fetchone()
    return page, int(row[0]) if row is not None else 0
