"""Reads behind history visibility, /messages, /context and /timestamp_to_event.

State lookups here are set-based: the state of many state groups, restricted to a few keys, comes
from ONE recursive query over the groups' delta chains instead of loading each group whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import aiosqlite

from dendrite_lite.storage.events import _COLUMNS, StoredEvent

__all__ = [
    "select_state_for_groups",
    "select_prev_state_groups",
    "select_membership_changes",
    "select_event_near_ts",
    "select_current_memberships",
    "select_stream_orderings",
]

StateKey = tuple[str, str]

# Every group in `chain` is reached from `start` by following prev_group `dist` times; the entry
# with the smallest dist for a key is the one in effect for `start`.
_CHAIN_CTE = (
    "WITH RECURSIVE chain(start, grp, dist) AS ("
    " SELECT id, id, 0 FROM state_groups WHERE id IN ({groups})"
    " UNION ALL"
    " SELECT chain.start, sg.prev_group, chain.dist + 1 FROM chain"
    " JOIN state_groups sg ON sg.id = chain.grp WHERE sg.prev_group IS NOT NULL)"
)
_CHUNK = 400


async def select_state_for_groups(
    conn: aiosqlite.Connection,
    groups: Iterable[int],
    keys: Sequence[StateKey] | None = None,
    types: Sequence[str] | None = None,
    *,
    members: Sequence[str] | None = None,
) -> dict[int, dict[StateKey, str]]:
    """group -> {(type, state_key): event_id} for each group, restricted to `keys` (exact) and/or
    `types` (any state_key) when given; with neither, the full state. `members` (lazy-loading)
    keeps every non-member entry but only the m.room.member entries of those users."""
    wanted = sorted(set(groups))
    out: dict[int, dict[StateKey, str]] = {g: {} for g in wanted}
    if not wanted:
        return out
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        params: list[object] = list(chunk)
        where: list[str] = []
        if keys:
            where.append(
                "(e.type, e.state_key) IN (VALUES "
                + ",".join("(?, ?)" for _ in keys)
                + ")"
            )
            for k in keys:
                params.extend(k)
        if types:
            where.append(f"e.type IN ({','.join('?' * len(types))})")
            params.extend(types)
        if members is not None:
            where.append("e.type != 'm.room.member'")
            if members:
                where.append(
                    f"(e.type = 'm.room.member' AND e.state_key IN ({','.join('?' * len(members))}))"
                )
                params.extend(members)
        filt = f" WHERE ({' OR '.join(where)})" if where else ""
        sql = (
            _CHAIN_CTE.format(groups=",".join("?" * len(chunk)))
            + " SELECT chain.start, e.type, e.state_key, e.event_id FROM chain"
            " JOIN state_group_entries e ON e.state_group = chain.grp"
            + filt
            + " ORDER BY chain.start, chain.dist DESC"
        )
        # Farthest delta first, so the nearest one (the one in effect) is applied last.
        acc: dict[int, dict[StateKey, str | None]] = {}
        async with conn.execute(sql, params) as cur:
            for row in await cur.fetchall():
                acc.setdefault(row[0], {})[(row[1], row[2])] = row[3]
        for g, entries in acc.items():
            out[g] = {k: v for k, v in entries.items() if v is not None}
    return out


async def select_prev_state_groups(
    conn: aiosqlite.Connection, event_ids: Sequence[str]
) -> dict[str, int]:
    """event_id -> the state group after one of its prev events: the state before the event
    (exact for the linear rooms local users build; one branch's view at a fork)."""
    found: dict[str, int] = {}
    for start in range(0, len(event_ids), _CHUNK):
        chunk = event_ids[start : start + _CHUNK]
        sql = (
            "SELECT ee.event_id, MAX(p.state_group) FROM event_edges ee"
            " JOIN events p ON p.event_id = ee.prev_event_id"
            f" WHERE ee.event_id IN ({','.join('?' * len(chunk))}) AND p.state_group IS NOT NULL"
            " GROUP BY ee.event_id"
        )
        async with conn.execute(sql, chunk) as cur:
            for row in await cur.fetchall():
                found[row[0]] = int(row[1])
    return found


async def select_membership_changes(
    conn: aiosqlite.Connection, room_id: str, user_id: str
) -> list[tuple[int, str]]:
    """(stream_ordering, membership) of every accepted timeline m.room.member event of the user
    in the room, oldest first."""
    sql = (
        "SELECT stream_ordering, json_extract(json, '$.content.membership') FROM events"
        " WHERE room_id = ? AND type = 'm.room.member' AND state_key = ?"
        " AND outlier = 0 AND rejected_reason IS NULL ORDER BY stream_ordering"
    )
    async with conn.execute(sql, (room_id, user_id)) as cur:
        return [(int(r[0]), str(r[1])) for r in await cur.fetchall()]


async def select_current_memberships(
    conn: aiosqlite.Connection, user_id: str, room_ids: Sequence[str] | None = None
) -> dict[str, tuple[str, str, int]]:
    """room_id -> (membership, member event id, its stream_ordering) of the user's current
    membership, in the given rooms or in every room the user has a membership in."""
    sql = (
        "SELECT cs.room_id, cs.membership, cs.event_id, e.stream_ordering FROM current_state cs"
        " JOIN events e ON e.event_id = cs.event_id"
        " WHERE cs.state_key = ? AND cs.type = 'm.room.member'"
    )
    params: list[object] = [user_id]
    if room_ids is not None:
        if not room_ids:
            return {}
        sql += f" AND cs.room_id IN ({','.join('?' * len(room_ids))})"
        params.extend(room_ids)
    async with conn.execute(sql, params) as cur:
        return {r[0]: (r[1], r[2], int(r[3])) for r in await cur.fetchall()}


async def select_stream_orderings(
    conn: aiosqlite.Connection, event_ids: Sequence[str]
) -> dict[str, int]:
    if not event_ids:
        return {}
    sql = (
        "SELECT event_id, stream_ordering FROM events"
        f" WHERE event_id IN ({','.join('?' * len(event_ids))})"
    )
    async with conn.execute(sql, list(event_ids)) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


async def select_event_near_ts(
    conn: aiosqlite.Connection, room_id: str, ts: int, *, forwards: bool
) -> StoredEvent | None:
    """The timeline event closest to `ts`: the first at or after it (forwards) or the last at or
    before it (backwards)."""
    cmp, order = (">=", "ASC") if forwards else ("<=", "DESC")
    sql = (
        f"SELECT {_COLUMNS} FROM events WHERE room_id = ? AND outlier = 0"
        f" AND rejected_reason IS NULL AND origin_server_ts {cmp} ?"
        f" ORDER BY origin_server_ts {order}, stream_ordering {order} LIMIT 1"
    )
    async with conn.execute(sql, (room_id, ts)) as cur:
        row = await cur.fetchone()
    return StoredEvent.from_row(row) if row is not None else None
