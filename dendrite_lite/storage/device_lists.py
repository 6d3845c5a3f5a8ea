"""The device list stream and the room-sharing reads device list tracking needs (schema in
migrations/0014_e2ee.sql).

A change is one row: the user whose devices or cross-signing keys changed, the device (NULL
for cross-signing keys), and `seen_by` when only that user may hear of it (migration 0023). The stream position is the AUTOINCREMENT sequence, which never goes
back even when rows are deleted (`select_position`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "MembershipChange",
    "StreamChange",
    "insert_device_list_change",
    "select_changed_users",
    "select_changes",
    "select_device_list_position",
    "select_joined_rooms",
    "select_membership_changes",
    "select_position",
    "select_room_members",
    "select_users_sharing_rooms_with",
]

_CHUNK = 400

INSERT_CHANGE = "INSERT INTO device_list_changes (user_id, device_id, seen_by) VALUES (?, ?, ?)"
SELECT_POSITION = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0)"
SELECT_CHANGED = (
    "SELECT DISTINCT user_id FROM device_list_changes WHERE stream_id > ? AND stream_id <= ?"
    " AND seen_by IS NULL"
)
SELECT_CHANGED_SEEN_BY = (
    "SELECT DISTINCT user_id FROM device_list_changes WHERE stream_id > ? AND stream_id <= ?"
    " AND seen_by = ?"
)
SELECT_CHANGES = (
    "SELECT stream_id, user_id, seen_by FROM device_list_changes"
    " WHERE stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?"
)
SELECT_SHARING = (
    "SELECT DISTINCT other.state_key FROM current_state mine JOIN current_state other"
    " ON other.room_id = mine.room_id AND other.type = 'm.room.member'"
    " AND other.membership = 'join'"
    " WHERE mine.state_key = ? AND mine.type = 'm.room.member' AND mine.membership = 'join'"
)
SELECT_JOINED_ROOMS = (
    "SELECT room_id FROM current_state"
    " WHERE state_key = ? AND type = 'm.room.member' AND membership = 'join'"
)
SELECT_MEMBERSHIP_ROOMS = (
    "SELECT room_id FROM current_state"
    " WHERE state_key = ? AND type = 'm.room.member' AND membership IS NOT NULL"
)
SELECT_ROOM_MEMBERS = (
    "SELECT state_key FROM current_state"
    " WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'"
)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    room_id: str
    user_id: str  # the member event's state_key
    membership: str


@dataclass(frozen=True, slots=True)
class StreamChange:
    stream_id: int
    user_id: str
    seen_by: str | None


async def insert_device_list_change(
    conn: aiosqlite.Connection, user_id: str, device_id: str | None, *, seen_by: str | None = None
) -> int:
    """Record a change of the user's device (None: cross-signing keys), for everyone sharing a
    room with them or only for `seen_by`; returns its position."""
    cur = await conn.execute(INSERT_CHANGE, (user_id, device_id, seen_by))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def select_position(conn: aiosqlite.Connection, table: str) -> int:
    """The last position handed out by an AUTOINCREMENT table (0 before its first row)."""
    async with conn.execute(SELECT_POSITION, (table,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_device_list_position(conn: aiosqlite.Connection) -> int:
    return await select_position(conn, "device_list_changes")


async def select_changed_users(
    conn: aiosqlite.Connection, since: int, until: int, *, seen_by: str | None = None
) -> set[str]:
    """Users whose device list changed in the positions (since, until]: changes for everyone,
    or (seen_by) those only that user may hear of."""
    if seen_by is None:
        query, args = SELECT_CHANGED, (since, until)
    else:
        query, args = SELECT_CHANGED_SEEN_BY, (since, until, seen_by)
    async with conn.execute(query, args) as cur:
        return {r[0] for r in await cur.fetchall()}


async def select_changes(
    conn: aiosqlite.Connection, since: int, until: int | None, limit: int
) -> list[StreamChange]:
    """The first `limit` changes after position `since` (up to `until`), in stream order.
    The writer commits one transaction at a time, so a change committed after this read has a
    higher position than every change it returned: reading on from the last one misses none."""
    bound = until if until is not None else 2**62
    async with conn.execute(SELECT_CHANGES, (since, bound, limit)) as cur:
        return [StreamChange(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def select_users_sharing_rooms_with(conn: aiosqlite.Connection, user_id: str) -> set[str]:
    """Everyone joined to a room the user is joined to (the user included when joined anywhere)."""
    async with conn.execute(SELECT_SHARING, (user_id,)) as cur:
        return {r[0] for r in await cur.fetchall()}


async def select_joined_rooms(conn: aiosqlite.Connection, user_id: str) -> list[str]:
    async with conn.execute(SELECT_JOINED_ROOMS, (user_id,)) as cur:
        return [r[0] for r in await cur.fetchall()]


async def select_room_members(conn: aiosqlite.Connection, room_id: str) -> list[str]:
    """The members joined to the room now."""
    async with conn.execute(SELECT_ROOM_MEMBERS, (room_id,)) as cur:
        return [r[0] for r in await cur.fetchall()]


async def select_membership_changes(
    conn: aiosqlite.Connection, user_id: str, since: int, until: int
) -> list[MembershipChange]:
    """Member events in room positions (since, until] of every room the user has a membership
    in (joined, left, invited...), oldest first."""
    async with conn.execute(SELECT_MEMBERSHIP_ROOMS, (user_id,)) as cur:
        rooms = [r[0] for r in await cur.fetchall()]
    out: list[MembershipChange] = []
    for start in range(0, len(rooms), _CHUNK):
        chunk = rooms[start : start + _CHUNK]
        sql = (
            "SELECT room_id, state_key, json FROM events WHERE type = 'm.room.member'"
            " AND outlier = 0 AND rejected_reason IS NULL"
            f" AND stream_ordering > ? AND stream_ordering <= ? AND room_id IN ({_marks(chunk)})"
            " ORDER BY stream_ordering"
        )
        async with conn.execute(sql, (since, until, *chunk)) as cur:
            for room_id, member, raw in await cur.fetchall():
                membership = json.loads(raw).get("content", {}).get("membership")
                if isinstance(membership, str):
                    out.append(MembershipChange(room_id, member, membership))
    return out


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))
