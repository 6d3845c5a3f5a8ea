"""Room state: deduplicated state snapshots (state groups) and the current state table.

A state group is stored as a delta from a parent group; chains are cut at MAX_DELTA_DEPTH by
writing a full snapshot, so loading any group reads a bounded number of rows-sets while a room
with 10,000 members does not store 10,000 rows per message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import aiosqlite

from dendrite_lite.storage.room_changes import touch

__all__ = [
    "StateMap",
    "MAX_DELTA_DEPTH",
    "insert_state_group",
    "select_state_group",
    "select_current_state",
    "select_current_state_event_id",
    "select_current_state_count",
    "update_current_state",
    "select_room_ids_for_user",
    "select_members",
    "select_shared_member_profile",
    "select_server_is_member",
]

StateMap = dict[tuple[str, str], str]
MAX_DELTA_DEPTH = 32

INSERT_GROUP = "INSERT INTO state_groups (room_id, prev_group, delta_depth) VALUES (?, ?, ?)"
SELECT_GROUP = "SELECT prev_group, delta_depth FROM state_groups WHERE id = ?"
INSERT_ENTRY = (
    "INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES (?, ?, ?, ?)"
)
SELECT_ENTRIES = "SELECT type, state_key, event_id FROM state_group_entries WHERE state_group = ?"
SELECT_CURRENT = "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?"
SELECT_CURRENT_ONE = (
    "SELECT event_id FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?"
)
COUNT_CURRENT = "SELECT COUNT(*) FROM current_state WHERE room_id = ?"
UPSERT_CURRENT = (
    "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, type, state_key)"
    " DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership"
)
DELETE_CURRENT = "DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?"
SELECT_ROOMS_FOR_USER = (
    "SELECT room_id FROM current_state"
    " WHERE state_key = ? AND type = 'm.room.member' AND membership = ? ORDER BY room_id"
)
SELECT_MEMBERS = (
    "SELECT state_key FROM current_state"
    " WHERE room_id = ? AND type = 'm.room.member' AND membership = ? ORDER BY state_key"
)


async def _group_depth(conn: aiosqlite.Connection, group: int) -> int:
    async with conn.execute(SELECT_GROUP, (group,)) as cur:
        row = await cur.fetchone()
    if row is None:
        raise KeyError(f"unknown state group {group}")
    return int(row["delta_depth"])


async def insert_state_group(
    conn: aiosqlite.Connection,
    room_id: str,
    *,
    prev_group: int | None,
    delta: Mapping[tuple[str, str], str | None] | None = None,
    full_state: Mapping[tuple[str, str], str] | None = None,
) -> int:
    """Store a new group: a delta on prev_group, or (prev_group None) a full snapshot.

    When the parent's chain is already MAX_DELTA_DEPTH long, the full state is written instead, so
    a caller passing a delta must be ready for that (we load the parent ourselves).
    """
    depth = 0
    if prev_group is not None:
        depth = await _group_depth(conn, prev_group) + 1
        if depth > MAX_DELTA_DEPTH:
            merged: dict[tuple[str, str], str | None] = dict(
                await select_state_group(conn, prev_group)
            )
            merged.update(delta or {})
            full_state = {k: v for k, v in merged.items() if v is not None}
            prev_group, delta, depth = None, None, 0
    cur = await conn.execute(INSERT_GROUP, (room_id, prev_group, depth))
    group = cur.lastrowid
    assert group is not None
    entries: Iterable[tuple[tuple[str, str], str | None]] = (
        (full_state or {}).items() if prev_group is None else (delta or {}).items()
    )
    await conn.executemany(INSERT_ENTRY, [(group, t, sk, e) for (t, sk), e in entries])
    return group


async def select_state_group(conn: aiosqlite.Connection, group: int) -> StateMap:
    """The full state of a group (walks its delta chain)."""
    chain: list[int] = []
    current: int | None = group
    while current is not None:
        chain.append(current)
        async with conn.execute(SELECT_GROUP, (current,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise KeyError(f"unknown state group {current}")
        current = row["prev_group"]
    state: dict[tuple[str, str], str | None] = {}
    for g in reversed(chain):  # root first, so later deltas override
        async with conn.execute(SELECT_ENTRIES, (g,)) as cur:
            for row in await cur.fetchall():
                state[(row[0], row[1])] = row[2]
    return {k: v for k, v in state.items() if v is not None}


async def select_current_state(conn: aiosqlite.Connection, room_id: str) -> StateMap:
    async with conn.execute(SELECT_CURRENT, (room_id,)) as cur:
        return {(row[0], row[1]): row[2] for row in await cur.fetchall()}


async def select_current_state_event_id(
    conn: aiosqlite.Connection, room_id: str, event_type: str, state_key: str
) -> str | None:
    async with conn.execute(SELECT_CURRENT_ONE, (room_id, event_type, state_key)) as cur:
        row = await cur.fetchone()
    return row[0] if row is not None else None


async def select_current_state_count(conn: aiosqlite.Connection, room_id: str) -> int:
    """How many state events the room's current state holds (left members included)."""
    async with conn.execute(COUNT_CURRENT, (room_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def update_current_state(
    conn: aiosqlite.Connection,
    room_id: str,
    delta: Mapping[tuple[str, str], tuple[str, str | None] | None],
) -> None:
    """Apply (type, state_key) -> (event_id, membership) changes; None removes the key."""
    touch(room_id)
    for (event_type, state_key), value in delta.items():
        if value is None:
            await conn.execute(DELETE_CURRENT, (room_id, event_type, state_key))
        else:
            await conn.execute(
                UPSERT_CURRENT, (room_id, event_type, state_key, value[0], value[1])
            )


async def select_room_ids_for_user(
    conn: aiosqlite.Connection, user_id: str, membership: str = "join"
) -> list[str]:
    async with conn.execute(SELECT_ROOMS_FOR_USER, (user_id, membership)) as cur:
        return [row[0] for row in await cur.fetchall()]


SELECT_JOINED_PROFILES = (
    "SELECT cs.state_key, json_extract(e.json, '$.content.displayname'),"
    " json_extract(e.json, '$.content.avatar_url'),"
    " EXISTS (SELECT 1 FROM redactions r JOIN events re ON re.event_id = r.event_id"
    "         WHERE r.redacts = cs.event_id AND re.rejected_reason IS NULL)"
    " FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
    " WHERE cs.room_id = ? AND cs.type = 'm.room.member' AND cs.membership = 'join'"
    " ORDER BY cs.state_key"
)


async def select_joined_profiles(
    conn: aiosqlite.Connection, room_id: str
) -> list[tuple[str, str | None, str | None]]:
    """(user id, displayname, avatar_url) of the room's joined members, by user id, read from
    their current member events (None for a value that is not a string or was redacted)
    without parsing the events: a big room has thousands."""
    out = []
    async with conn.execute(SELECT_JOINED_PROFILES, (room_id,)) as cur:
        for user_id, name, avatar, redacted in await cur.fetchall():
            if redacted:
                name = avatar = None
            out.append((
                user_id,
                name if isinstance(name, str) else None,
                avatar if isinstance(avatar, str) else None,
            ))
    return out


async def select_members(
    conn: aiosqlite.Connection, room_id: str, membership: str = "join"
) -> list[str]:
    async with conn.execute(SELECT_MEMBERS, (room_id, membership)) as cur:
        return [row[0] for row in await cur.fetchall()]


# The target's member event in every room where both users are joined; the newest one wins, as
# it carries the target's latest profile.
SELECT_SHARED_MEMBER_PROFILE = (
    "SELECT json_extract(e.json, '$.content.displayname'),"
    " json_extract(e.json, '$.content.avatar_url'),"
    " EXISTS (SELECT 1 FROM redactions r JOIN events re ON re.event_id = r.event_id"
    "         WHERE r.redacts = t.event_id AND re.rejected_reason IS NULL)"
    " FROM current_state t"
    " JOIN current_state q ON q.room_id = t.room_id AND q.type = 'm.room.member'"
    "  AND q.state_key = ? AND q.membership = 'join'"
    " JOIN events e ON e.event_id = t.event_id"
    " WHERE t.type = 'm.room.member' AND t.state_key = ? AND t.membership = 'join'"
    " ORDER BY e.stream_ordering DESC LIMIT 1"
)


async def select_shared_member_profile(
    conn: aiosqlite.Connection, requester: str, user_id: str
) -> tuple[str | None, str | None] | None:
    """(displayname, avatar_url) of `user_id`'s newest current member event in a room where
    both it and `requester` are joined; None when they share no room. A value that is not a
    string, or a redacted event's values, are None."""
    async with conn.execute(SELECT_SHARED_MEMBER_PROFILE, (requester, user_id)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    name, avatar, redacted = row
    if redacted:
        return None, None
    return (name if isinstance(name, str) else None, avatar if isinstance(avatar, str) else None)


# Whether any user of a server has one of the memberships in a room: a range scan of the room's
# member rows (the primary key), comparing the state key's end, with no event read.
SELECT_SERVER_IS_MEMBER = (
    "SELECT 1 FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
    " AND substr(state_key, -length(?)) = ? AND membership IN (SELECT value FROM json_each(?))"
    " LIMIT 1"
)


async def select_server_is_member(
    conn: aiosqlite.Connection, room_id: str, server_name: str, memberships: Sequence[str]
) -> bool:
    suffix = ":" + server_name
    args = (room_id, suffix, suffix, json.dumps(list(memberships)))
    async with conn.execute(SELECT_SERVER_IS_MEMBER, args) as cur:
        return await cur.fetchone() is not None
