"""SQL for events received over federation: auth chains, and turning an outlier into a timeline
event.

Auth chains are answered by a recursive CTE over `event_auth` (filled by events.insert_event)
rather than a precomputed closure table: a member event's chain is a handful of events, so the
walk is short, and a closure table would cost ~20 rows per event in a 10,000-member room for
nothing the CTE does not already answer in milliseconds (bench: tests/unit/federation/
test_ingest_auth_chain.py::test_auth_chain_of_10k_member_state_is_fast).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

__all__ = ["select_auth_chain_ids", "delete_outlier", "select_known_event_ids"]

# json_each takes the seed ids as one parameter, so 10,000 state events need no chunking.
SELECT_AUTH_CHAIN = (
    "WITH RECURSIVE chain(event_id) AS ("
    " SELECT auth_event_id FROM event_auth WHERE event_id IN (SELECT value FROM json_each(?))"
    " UNION"
    " SELECT a.auth_event_id FROM event_auth a JOIN chain c ON a.event_id = c.event_id"
    ") SELECT event_id FROM chain"
)
DELETE_OUTLIER = "DELETE FROM events WHERE event_id = ? AND outlier = 1"
SELECT_KNOWN = "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))"


async def select_auth_chain_ids(conn: aiosqlite.Connection, event_ids: Iterable[str]) -> set[str]:
    """Every auth ancestor of `event_ids` (the union of their auth chains, not the events
    themselves unless one is an ancestor of another). Ancestors we do not hold are included
    when an event we hold cites them."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    async with conn.execute(SELECT_AUTH_CHAIN, (json.dumps(ids),)) as cur:
        return {row[0] for row in await cur.fetchall()}


async def select_known_event_ids(conn: aiosqlite.Connection, event_ids: Iterable[str]) -> set[str]:
    """Which of `event_ids` we hold in any form (timeline, outlier, rejected)."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    async with conn.execute(SELECT_KNOWN, (json.dumps(ids),)) as cur:
        return {row[0] for row in await cur.fetchall()}


async def delete_outlier(conn: aiosqlite.Connection, event_id: str) -> bool:
    """Drop the outlier row of an event about to be stored again as a timeline event (it then
    gets a live stream position). Its DAG edges stay: they are the same for the same event."""
    cur = await conn.execute(DELETE_OUTLIER, (event_id,))
    return cur.rowcount == 1
