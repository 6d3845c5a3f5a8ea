"""Reads behind the sliding sync room list (MSC4186): each room's recency and the facts the list
filters look at, for many rooms at once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

__all__ = [
    "BUMP_EVENT_TYPES",
    "select_bump_stamps",
    "select_ever_joined",
    "select_former_members",
    "select_latest_positions",
    "select_room_tags",
    "select_space_children",
    "select_state_contents",
]

# MSC4186 `bump_stamp`: the event types that count as "proper" activity in a room.
BUMP_EVENT_TYPES = (
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
)
_CHUNK = 400


async def _rows(
    conn: aiosqlite.Connection,
    sql: str,
    ids: Sequence[str],
    before: Sequence[object] = (),
    after: Sequence[object] = (),
) -> list[Any]:
    """The rows of `sql` over all of `ids`, run a chunk at a time: `{ids}` in the SQL stands
    for the chunk's placeholders, bound between the `before` and `after` parameters."""
    out: list[Any] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            sql.format(ids=marks), [*before, *chunk, *after]
        ) as cur:
            out.extend(await cur.fetchall())
    return out


_SELECT_LATEST = (
    "SELECT r.value, (SELECT e.stream_ordering FROM events e WHERE e.room_id = r.value"
    " AND e.stream_ordering <= ?{types} AND e.outlier = 0"
    " AND e.rejected_reason IS NULL AND e.soft_failed = 0"
    " ORDER BY e.stream_ordering DESC LIMIT 1) FROM json_each(?) r"
)


async def select_latest_positions(
    conn: aiosqlite.Connection,
    room_ids: Sequence[str],
    until: int,
    types: Sequence[str] | None = None,
) -> dict[str, int]:
    """room_id -> stream position of its newest timeline event (of one of `types`, if given)
    at or before `until`; rooms with none are left out. One indexed backward scan per room."""
    where = f" AND e.type IN ({','.join('?' * len(types))})" if types else ""
    params = [until, *(types or ()), json.dumps(list(room_ids))]
    async with conn.execute(_SELECT_LATEST.format(types=where), params) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall() if r[1] is not None}


async def select_bump_stamps(
    conn: aiosqlite.Connection, room_ids: Sequence[str], until: int
) -> dict[str, int]:
    """room_id -> stream position of its newest event of a bump type at or before `until`."""
    return await select_latest_positions(conn, room_ids, until, BUMP_EVENT_TYPES)


async def select_state_contents(
    conn: aiosqlite.Connection,
    room_ids: Sequence[str],
    event_type: str,
    state_key: str = "",
) -> dict[str, dict[str, Any]]:
    """room_id -> content of the (event_type, state_key) event in its current state, for the
    rooms that have one."""
    sql = (
        "SELECT cs.room_id, json_extract(e.json, '$.content') FROM current_state cs"
        " JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.type = ? AND cs.state_key = ? AND cs.room_id IN ({ids})"
    )
    out: dict[str, dict[str, Any]] = {}
    for room_id, content in await _rows(
        conn, sql, room_ids, before=(event_type, state_key)
    ):
        value = json.loads(content) if isinstance(content, str) else None
        out[room_id] = value if isinstance(value, dict) else {}
    return out


async def select_space_children(
    conn: aiosqlite.Connection, space_ids: Sequence[str]
) -> set[str]:
    """The rooms named by a current m.space.child event of one of the spaces (a child event
    without a non-empty `via` list is a removed child, spaces.md)."""
    sql = (
        "SELECT cs.state_key, json_extract(e.json, '$.content.via') FROM current_state cs"
        " JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.type = 'm.space.child' AND cs.room_id IN ({ids})"
    )
    found: set[str] = set()
    for child, via in await _rows(conn, sql, space_ids):
        parsed = json.loads(via) if isinstance(via, str) else None
        if isinstance(parsed, list) and parsed:
            found.add(child)
    return found


async def select_room_tags(
    conn: aiosqlite.Connection, user_id: str
) -> dict[str, set[str]]:
    """room_id -> the tag names of the user's m.tag room account data."""
    sql = (
        "SELECT room_id, content FROM account_data"
        " WHERE user_id = ? AND type = 'm.tag' AND room_id != ''"
    )
    out: dict[str, set[str]] = {}
    async with conn.execute(sql, (user_id,)) as cur:
        for room_id, content in await cur.fetchall():
            tags = json.loads(content).get("tags")
            if isinstance(tags, dict) and tags:
                out[room_id] = set(tags)
    return out


async def select_ever_joined(
    conn: aiosqlite.Connection, user_id: str, room_ids: Sequence[str]
) -> set[str]:
    """The rooms among `room_ids` the user has a join event in (a room banned from before
    ever joining is not part of their room list, MSC4186)."""
    sql = (
        "SELECT DISTINCT room_id FROM events WHERE type = 'm.room.member' AND state_key = ?"
        " AND room_id IN ({ids}) AND outlier = 0"
        " AND json_extract(json, '$.content.membership') = 'join'"
    )
    return {r[0] for r in await _rows(conn, sql, room_ids, before=(user_id,))}


async def select_former_members(
    conn: aiosqlite.Connection, room_ids: Sequence[str], user_id: str, limit: int
) -> dict[str, list[str]]:
    """room_id -> up to `limit` users other than `user_id` who left or were banned, in the
    order their membership changed (the heroes of a room nobody else is in any more)."""
    sql = (
        "SELECT cs.room_id, cs.state_key FROM current_state cs"
        " JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.type = 'm.room.member' AND cs.membership IN ('leave', 'ban')"
        " AND cs.state_key != ? AND cs.room_id IN ({ids})"
        " ORDER BY cs.room_id, e.stream_ordering"
    )
    out: dict[str, list[str]] = {}
    for room_id, member in await _rows(conn, sql, room_ids, before=(user_id,)):
        found = out.setdefault(room_id, [])
        if len(found) < limit:
            found.append(member)
    return out
