"""Set-based reads for /sync: one query per kind of data for ALL of a user's rooms.

An initial sync of a user in N rooms must not cost N round trips per section, so every function
here takes a list of rooms and answers for each of them at once (window functions and correlated
subqueries over the (room_id, stream_ordering) index).
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from dendrite_lite.storage.events import _COLUMNS, StoredEvent

__all__ = [
    "select_recent_events",
    "select_state_groups_at",
    "select_changed_state_keys",
    "select_member_summary",
    "select_users_sharing_rooms",
]

_CHUNK = 400


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def select_recent_events(
    conn: aiosqlite.Connection,
    ranges: Sequence[tuple[str, int | None, int]],
    limit: int,
    types: Sequence[str] | None = None,
) -> dict[str, list[StoredEvent]]:
    """Per (room_id, since, until): the newest `limit` timeline events with since < position
    <= until (since None: no lower bound), oldest first. One more is read, so the caller knows
    whether the timeline is limited (a room gets up to limit+1 events). `types`: only events of
    these exact types (a filter's, so `limit` counts the events the client asked for)."""
    out: dict[str, list[StoredEvent]] = {r: [] for r, _, _ in ranges}
    # One statement, one indexed top-N scan per room (UNION ALL of per-room subqueries): each
    # room costs limit+1 rows however long its history is.
    step = _CHUNK // 4
    for start in range(0, len(ranges), step):
        parts: list[str] = []
        params: list[object] = []
        for room_id, since, until in ranges[start : start + step]:
            lower = "" if since is None else " AND stream_ordering > ?"
            if types is not None:
                lower += f" AND type IN ({','.join('?' for _ in types)})"
            parts.append(
                f"SELECT * FROM (SELECT {_COLUMNS} FROM events WHERE room_id = ? AND outlier = 0"
                f" AND stream_ordering <= ?{lower} ORDER BY stream_ordering DESC LIMIT ?)"
            )
            params.extend(
                [room_id, until] + ([since] if since is not None else []) + list(types or ())
                + [limit + 1]
            )
        async with conn.execute(" UNION ALL ".join(parts), params) as cur:
            rows = await cur.fetchall()
        for row in sorted(rows, key=lambda r: r["stream_ordering"]):
            s = StoredEvent.from_row(row)
            out[s.event.room_id].append(s)
    return out


async def select_state_groups_at(
    conn: aiosqlite.Connection, positions: Sequence[tuple[str, int]]
) -> dict[str, int | None]:
    """room_id -> the state group after the room's last timeline event at or before the position
    (None when the room has no event there yet)."""
    out: dict[str, int | None] = {}
    for start in range(0, len(positions), _CHUNK):
        chunk = positions[start : start + _CHUNK]
        sql = (
            f"WITH r(room_id, pos) AS (VALUES {','.join('(?, ?)' for _ in chunk)}) "
            "SELECT r.room_id, (SELECT e.state_group FROM events e WHERE e.room_id = r.room_id"
            " AND e.stream_ordering <= r.pos AND e.outlier = 0 AND e.state_group IS NOT NULL"
            " ORDER BY e.stream_ordering DESC LIMIT 1) FROM r"
        )
        params = [v for pair in chunk for v in pair]
        async with conn.execute(sql, params) as cur:
            for row in await cur.fetchall():
                out[row[0]] = row[1]
    return out


async def select_changed_state_keys(
    conn: aiosqlite.Connection, room_id: str, after: int, before: int
) -> list[tuple[str, str]]:
    """(type, state_key) of the state events of a room with after < stream_ordering < before."""
    sql = (
        "SELECT DISTINCT type, state_key FROM events WHERE room_id = ? AND state_key IS NOT NULL"
        " AND outlier = 0 AND rejected_reason IS NULL AND stream_ordering > ? AND stream_ordering < ?"
    )
    async with conn.execute(sql, (room_id, after, before)) as cur:
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def select_member_summary(
    conn: aiosqlite.Connection, room_ids: Sequence[str], user_id: str, heroes: int = 5
) -> dict[str, tuple[dict[str, int], list[str]]]:
    """room_id -> ({membership: count}, heroes): the counts of every membership in the current
    state, and up to `heroes` joined or invited members other than user_id, in the order they
    became members (their member event's stream position). One query for all rooms."""
    out: dict[str, tuple[dict[str, int], list[str]]] = {r: ({}, []) for r in room_ids}
    for start in range(0, len(room_ids), _CHUNK):
        chunk = list(room_ids[start : start + _CHUNK])
        sql = (
            "SELECT cs.room_id, cs.state_key, cs.membership FROM current_state cs"
            " JOIN events e ON e.event_id = cs.event_id WHERE cs.type = 'm.room.member'"
            f" AND cs.room_id IN ({_marks(len(chunk))}) ORDER BY cs.room_id, e.stream_ordering"
        )
        async with conn.execute(sql, chunk) as cur:
            for room_id, member, membership in await cur.fetchall():
                counts, names = out[room_id]
                counts[membership] = counts.get(membership, 0) + 1
                if (
                    membership in ("join", "invite")
                    and member != user_id
                    and len(names) < heroes
                ):
                    names.append(member)
    return out


async def select_joined_between(
    conn: aiosqlite.Connection, room_id: str, user_id: str, after: int, until: int
) -> bool:
    """Did the user join the room at a position in (after, until]?"""
    sql = (
        "SELECT 1 FROM events WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ?"
        " AND outlier = 0 AND type = 'm.room.member' AND state_key = ?"
        " AND json_extract(json, '$.content.membership') = 'join' LIMIT 1"
    )
    async with conn.execute(sql, (room_id, after, until, user_id)) as cur:
        return await cur.fetchone() is not None


async def select_named_rooms(conn: aiosqlite.Connection, room_ids: Sequence[str]) -> set[str]:
    """The rooms whose current state gives them a name or a canonical alias."""
    found: set[str] = set()
    for start in range(0, len(room_ids), _CHUNK):
        chunk = list(room_ids[start : start + _CHUNK])
        sql = (
            "SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
            " WHERE cs.state_key = '' AND ((cs.type = 'm.room.name'"
            " AND COALESCE(json_extract(e.json, '$.content.name'), '') != '')"
            " OR (cs.type = 'm.room.canonical_alias'"
            " AND COALESCE(json_extract(e.json, '$.content.alias'), '') != ''))"
            f" AND cs.room_id IN ({_marks(len(chunk))})"
        )
        async with conn.execute(sql, chunk) as cur:
            found.update(r[0] for r in await cur.fetchall())
    return found


async def select_users_sharing_rooms(
    conn: aiosqlite.Connection, room_ids: Sequence[str]
) -> list[str]:
    """Everyone joined to at least one of the rooms (presence is sent for them)."""
    found: set[str] = set()
    for start in range(0, len(room_ids), _CHUNK):
        chunk = list(room_ids[start : start + _CHUNK])
        sql = (
            "SELECT DISTINCT state_key FROM current_state WHERE type = 'm.room.member'"
            f" AND membership = 'join' AND room_id IN ({_marks(len(chunk))})"
        )
        async with conn.execute(sql, chunk) as cur:
            found.update(r[0] for r in await cur.fetchall())
    return sorted(found)
