"""The auth chain index (events/state_res/chain_index.py) in SQLite: positions and reaches.

Events are indexed after their auth events, from the `event_auth` edges insert_event writes, so
any event we hold can be indexed whenever it is first needed, including events stored before
the index existed or by code that does not index (the local pipeline). An event can only be
indexed once all its auth ancestors are held: their edges are what the reach is built from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import aiosqlite

from dendrite_lite.events.state_res.chain_index import ChainAllocator, ChainPosition

__all__ = [
    "index_events",
    "select_unindexed",
    "select_reaches",
    "select_merged_reach",
    "select_event_ids_in_ranges",
]

# Events among the seeds, and their auth ancestors, that have no position yet; the walk stops at
# indexed events (their ancestors are indexed too). `held`: whether we hold the event at all.
SELECT_UNINDEXED = (
    "WITH RECURSIVE todo(event_id) AS ("
    " SELECT value FROM json_each(?) j WHERE NOT EXISTS"
    "  (SELECT 1 FROM event_auth_chain_positions p WHERE p.event_id = j.value)"
    " UNION"
    " SELECT a.auth_event_id FROM event_auth a JOIN todo t ON a.event_id = t.event_id"
    " WHERE NOT EXISTS"
    "  (SELECT 1 FROM event_auth_chain_positions p WHERE p.event_id = a.auth_event_id)"
    ") SELECT t.event_id, EXISTS (SELECT 1 FROM events e WHERE e.event_id = t.event_id)"
    " FROM todo t"
)
SELECT_EDGES = (
    "SELECT event_id, auth_event_id FROM event_auth"
    " WHERE event_id IN (SELECT value FROM json_each(?))"
)
SELECT_POSITIONS = (
    "SELECT event_id, chain_id, seq FROM event_auth_chain_positions"
    " WHERE event_id IN (SELECT value FROM json_each(?))"
)
SELECT_REACH = (
    "SELECT event_id, chain_id, seq FROM event_auth_chain_reach"
    " WHERE event_id IN (SELECT value FROM json_each(?))"
)
SELECT_MERGED_REACH = (
    "SELECT chain_id, MAX(seq) FROM event_auth_chain_reach"
    " WHERE event_id IN (SELECT value FROM json_each(?)) GROUP BY chain_id"
)
# Rows of one chain from its top down; read until the first row of one of the events, instead
# of looking up every event's rows (10,000 in a big room).
SELECT_CHAIN_FROM_TOP = (
    "SELECT event_id, seq FROM event_auth_chain_reach WHERE chain_id = ? ORDER BY seq DESC"
)
_BATCH = 256
# Above this many chains one grouped pass over the events' rows is cheaper than a query a chain.
_CHAIN_QUERIES_MAX = 32
SELECT_HEADS = (
    "SELECT chain_id, MAX(seq) FROM event_auth_chain_positions"
    " WHERE chain_id IN (SELECT value FROM json_each(?)) GROUP BY chain_id"
)
SELECT_NEXT_CHAIN = "SELECT COALESCE(MAX(chain_id), 0) + 1 FROM event_auth_chain_positions"
SELECT_IN_RANGE = (
    "SELECT event_id FROM event_auth_chain_positions WHERE chain_id = ? AND seq > ? AND seq <= ?"
)
INSERT_POSITION = "INSERT INTO event_auth_chain_positions (event_id, chain_id, seq) VALUES (?, ?, ?)"
INSERT_REACH = "INSERT INTO event_auth_chain_reach (event_id, chain_id, seq) VALUES (?, ?, ?)"


async def _rows(conn: aiosqlite.Connection, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    async with conn.execute(sql, params) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def select_unindexed(
    conn: aiosqlite.Connection, event_ids: Iterable[str]
) -> dict[str, bool]:
    """event id -> held, for the events among `event_ids` and their auth ancestors that are not
    indexed yet (empty when everything is)."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return {}
    return {eid: bool(held) for eid, held in await _rows(conn, SELECT_UNINDEXED, json.dumps(ids))}


async def index_events(conn: aiosqlite.Connection, event_ids: Iterable[str]) -> set[str]:
    """Index `event_ids` and their auth ancestors not indexed yet (in a write transaction).
    Returns the events that cannot be indexed because they or one of their auth ancestors are
    not held (empty when all are indexed now)."""
    todo = await select_unindexed(conn, event_ids)
    if not todo:
        return set()
    held = [eid for eid, h in todo.items() if h]
    auth: dict[str, list[str]] = {eid: [] for eid in held}
    for eid, aid in await _rows(conn, SELECT_EDGES, json.dumps(held)):
        auth[eid].append(aid)
    outside = {a for ids in auth.values() for a in ids if a not in todo}
    positions = await _select_positions(conn, outside)
    heads = dict(await _rows(conn, SELECT_HEADS, json.dumps(sorted({p.chain_id for p in positions.values()}))))
    (next_chain,), = await _rows(conn, SELECT_NEXT_CHAIN)
    allocator = ChainAllocator(heads, next_chain)

    # Kahn's algorithm over the auth edges inside `todo`; an event whose auth event is not held
    # (or is in an auth cycle, which only forged v1/v2 ids could make) stays unindexed.
    waiting = {eid: sum(1 for a in ids if a in auth) for eid, ids in auth.items()}
    children: dict[str, list[str]] = {}
    for eid, ids in auth.items():
        for a in ids:
            if a in auth:
                children.setdefault(a, []).append(eid)
    ready = sorted(eid for eid, n in waiting.items() if n == 0)
    blocked: set[str] = {eid for eid, h in todo.items() if not h}
    new_positions: list[tuple[str, int, int]] = []
    new_reach: list[tuple[str, int, int]] = []
    while ready:
        eid = ready.pop()
        ids = auth[eid]
        if any(a in blocked or (a not in positions and a not in auth) for a in ids):
            blocked.add(eid)
        else:
            pos = allocator.place([positions[a] for a in ids])
            positions[eid] = pos
            new_positions.append((eid, pos.chain_id, pos.seq))
            new_reach.extend((eid, c, s) for c, s in pos.reach.items())
        for c in children.get(eid, ()):
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    await conn.executemany(INSERT_POSITION, new_positions)
    await conn.executemany(INSERT_REACH, new_reach)
    return {eid for eid in todo if eid not in positions}


async def _select_positions(conn: aiosqlite.Connection, event_ids: Iterable[str]) -> dict[str, ChainPosition]:
    ids = sorted(set(event_ids))
    reaches = await select_reaches(conn, ids)
    return {
        eid: ChainPosition(chain, seq, reaches.get(eid, {chain: seq}))
        for eid, chain, seq in await _rows(conn, SELECT_POSITIONS, json.dumps(ids))
    }


async def select_reaches(
    conn: aiosqlite.Connection, event_ids: Iterable[str]
) -> dict[str, dict[int, int]]:
    """The reach of each indexed event among `event_ids`."""
    out: dict[str, dict[int, int]] = {}
    ids = json.dumps(list(dict.fromkeys(event_ids)))
    for eid, chain, seq in await _rows(conn, SELECT_REACH, ids):
        out.setdefault(eid, {})[chain] = seq
    return out


async def select_merged_reach(
    conn: aiosqlite.Connection, event_ids: Sequence[str], chains: Iterable[int] | None = None
) -> dict[int, int]:
    """The reach of the set `event_ids` (per chain, the highest seq of any of them), only on
    `chains` if given: a big room's state reaches a chain per member."""
    if not event_ids:
        return {}
    wanted = None if chains is None else sorted(set(chains))
    if wanted is None or len(wanted) > _CHAIN_QUERIES_MAX:
        merged = dict(await _rows(conn, SELECT_MERGED_REACH, json.dumps(list(event_ids))))
        return merged if wanted is None else {c: merged[c] for c in wanted if c in merged}
    members = set(event_ids)
    out: dict[int, int] = {}
    for chain in wanted:
        async with conn.execute(SELECT_CHAIN_FROM_TOP, (chain,)) as cur:
            top = await _first_member_seq(cur, members)
        if top is not None:
            out[chain] = top
    return out


async def _first_member_seq(cur: aiosqlite.Cursor, members: set[str]) -> int | None:
    while rows := await cur.fetchmany(_BATCH):
        for eid, seq in rows:
            if eid in members:
                return int(seq)
    return None


async def select_event_ids_in_ranges(
    conn: aiosqlite.Connection, ranges: Iterable[tuple[int, int, int]]
) -> set[str]:
    """The events of each (chain, low, high) with low < seq <= high."""
    out: set[str] = set()
    for chain, low, high in ranges:
        out.update(r[0] for r in await _rows(conn, SELECT_IN_RANGE, chain, low, high))
    return out

