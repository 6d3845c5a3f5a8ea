"""The auth difference of state sets from the auth chain index (storage/auth_chains.py), and the
events a v2/v2.1 resolution reads once it has that difference.

Without the index a resolution loads every event of every state set and walks all their auth
chains: in a 10,000-member room that is ~10,000 events read and parsed for a fork that conflicts
on a handful of keys. With it, the sets' reaches are merged in SQL (the unconflicted events'
once, shared by all sets) and only the conflicted events, the auth difference, their auth
ancestors and the state the iterative auth checks look up are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import aiosqlite

from dendrite_lite.events.auth import auth_types_for_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.state_res import StateMap
from dendrite_lite.events.state_res.chain_index import difference_ranges, merge_reaches
from dendrite_lite.storage import Storage
from dendrite_lite.storage import auth_chains

__all__ = ["indexed_auth_difference", "state_read_by_checks", "POWER_LEVELS_KEY", "CREATE_KEY"]

POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
CREATE_KEY: StateKey = ("m.room.create", "")


async def indexed_auth_difference(
    storage: Storage,
    state_sets: Sequence[StateMap],
    unconflicted: Mapping[StateKey, str],
    conflicted: set[str],
    pending: Mapping[str, Event],
) -> set[str] | None:
    """The auth difference of `state_sets` (fragments/v2-state-res.md §Auth difference, each
    set's chain including the set's own events, as events.state_res.v2 computes it), indexing
    events first if needed. `unconflicted`, `conflicted`: split_conflicted(state_sets).
    `pending`: events not stored yet that the sets may contain (their auth events must be
    stored). None when some event or auth ancestor is not held, so the index cannot answer (the
    caller then loads and walks, and learns what is missing)."""
    pending_auth = {a for e in pending.values() for a in e.auth_event_ids} - pending.keys()
    seeds = {eid for s in state_sets for eid in s.values()} - pending.keys()
    seeds |= pending_auth
    unindexed = await storage.db.read(lambda c: auth_chains.select_unindexed(c, seeds))
    if unindexed:
        if not all(unindexed.values()):
            return None
        if await storage.db.write(lambda c: auth_chains.index_events(c, unindexed)):
            return None
    stored_conflicted = (conflicted - pending.keys()) | pending_auth

    async def read(conn: aiosqlite.Connection) -> tuple[dict[int, int], dict[str, dict[int, int]]]:
        reaches = await auth_chains.select_reaches(conn, stored_conflicted)
        # Only chains the conflicted events reach can differ between the sets: elsewhere every
        # set has the unconflicted events' reach. (In a big room that has a chain per member.)
        chains = {c for r in reaches.values() for c in r}
        base = await auth_chains.select_merged_reach(
            conn, [e for e in unconflicted.values() if e not in pending], chains
        )
        return base, reaches

    base, reaches = await storage.db.read(read)
    if not stored_conflicted <= reaches.keys():
        return None  # not indexed after all (cannot happen unless rows were deleted)
    virtual = _pending_reaches(pending, reaches)
    reaches.update(virtual)
    base = merge_reaches([base, *(reaches[e] for e in unconflicted.values() if e in pending)])
    extra = [merge_reaches(reaches[e] for e in s.values() if e in conflicted) for s in state_sets]
    chains = {c for r in extra for c in r}
    per_set = [{c: max(base.get(c, 0), r.get(c, 0)) for c in chains} for r in extra]
    ranges = difference_ranges(per_set)
    # Pending events sit alone on chains numbered below zero (seq 1), never stored.
    by_chain = {-i: eid for i, eid in enumerate(virtual, start=1)}
    out = {by_chain[c] for c, low, high in ranges if c < 0 and low < 1 <= high}
    stored_ranges = [r for r in ranges if r[0] > 0]
    if stored_ranges:
        out |= await storage.db.read(
            lambda c: auth_chains.select_event_ids_in_ranges(c, stored_ranges)
        )
    return out


def _pending_reaches(
    pending: Mapping[str, Event], stored: Mapping[str, Mapping[int, int]]
) -> dict[str, dict[int, int]]:
    """Reaches of the pending events, each on a chain of its own (-1, -2, ... in the order of
    `pending`), after the pending events it cites."""
    chain_of = {eid: -i for i, eid in enumerate(pending, start=1)}
    out: dict[str, dict[int, int]] = {}

    def reach(eid: str, seen: frozenset[str]) -> dict[int, int]:
        r = out.get(eid)
        if r is None:
            parts: list[Mapping[int, int]] = []
            for a in pending[eid].auth_event_ids:
                if a in pending and a not in seen:
                    parts.append(reach(a, seen | {eid}))
                elif a in stored:
                    parts.append(stored[a])
            r = merge_reaches(parts)
            r[chain_of[eid]] = 1
            out[eid] = r
        return r

    for eid in pending:
        reach(eid, frozenset())
    return {eid: out[eid] for eid in pending}


def state_read_by_checks(
    events: Mapping[str, Event], full: Iterable[str], state_sets: Sequence[StateMap]
) -> set[str]:
    """Events the iterative auth checks may look up in the partially resolved state for the
    events of the full conflicted set: the sets' values for each one's auth state keys (the
    resolved value is always one of them), minus those in `events` already."""
    out: set[str] = set()
    for eid in full:
        ev = events.get(eid)
        if ev is None:
            continue
        keys = auth_types_for_event(ev.room_version, ev.type, ev.state_key, ev.sender, ev.content)
        for key in (*keys, CREATE_KEY, POWER_LEVELS_KEY):
            for s in state_sets:
                v = s.get(key)
                if v is not None and v not in events:
                    out.add(v)
    return out
