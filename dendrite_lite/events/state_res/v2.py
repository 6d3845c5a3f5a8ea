"""State resolution v2 (rooms v2-v11) and v2.1 (v12).

Spec: content/rooms/fragments/v2-state-res.md and content/rooms/v12.md §State resolution.

Where the spec text leaves room for reading, this follows what Synapse and Dendrite do, so that
servers converge on the same state (each such place is marked NOTSPEC with the reason).

Performance: a 10,000-member room resolves two forks with a few hundred conflicted events, so
everything here is linear in the auth DAG it walks: one walk over the unconflicted state's
ancestors (shared by all state sets), small walks for the conflicted side, power levels cached
per (power levels event, sender), Kahn's algorithm on a heap and mainline positions in a dict.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from dendrite_lite.events.auth import AuthError, auth_types_for_event, check_auth
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.power_levels import user_power_level
from dendrite_lite.events.room_versions import RoomVersion, StateResAlgorithm
from dendrite_lite.events.state_res._common import (
    CREATE_KEY,
    POWER_LEVELS_KEY,
    EventLookup,
    StateMap,
    create_event_id,
    flatten,
    separate,
)

__all__ = ["resolve_v2", "auth_difference"]

_PL, _CREATE, _JOIN_RULES, _MEMBER = (
    "m.room.power_levels",
    "m.room.create",
    "m.room.join_rules",
    "m.room.member",
)

AuthChain = Callable[[str], frozenset[str]]


def resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    events: EventLookup,
    auth_chain: AuthChain | None,
    auth_difference: Collection[str] | None = None,
) -> dict[StateKey, str]:
    unconflicted, conflicted = separate(state_sets, missing_is_conflict=True)
    if not conflicted:
        return unconflicted
    v21 = room_version.state_res is StateResAlgorithm.V2_1
    conflicted_ids = flatten(conflicted)
    chains = _Chains(events, auth_chain)

    if auth_difference is None:
        auth_difference = _auth_difference(state_sets, unconflicted, conflicted_ids, chains)
    full = conflicted_ids | set(auth_difference)
    if v21:
        full |= _conflicted_subgraph(conflicted_ids, chains)
    full_events = {eid: events(eid, "full conflicted set") for eid in full}

    # Step 1: power events plus their auth ancestors in the full conflicted set.
    power = [eid for eid, ev in full_events.items() if _is_power_event(ev)]
    sorted_power = _reverse_topological_power_sort(power, full, events)

    # Step 2: v2 starts from the unconflicted state, v2.1 from nothing (rooms/v12.md, change 1).
    base: dict[StateKey, str] = {} if v21 else dict(unconflicted)
    checker = _AuthChecker(room_version, events)
    state = checker.apply(sorted_power, base)

    # Steps 3-4: everything else in mainline order of the resolved power levels.
    in_power = set(sorted_power)
    leftover = [eid for eid in full if eid not in in_power]
    state = checker.apply(_mainline_sort(leftover, state.get(POWER_LEVELS_KEY), events), state)

    # Step 5: the unconflicted state wins.
    state.update(unconflicted)
    return state


def _is_power_event(ev: Event) -> bool:
    """fragments/v2-state-res.md §Power events.

    NOTSPEC: like Synapse and Dendrite, power levels/join rules count only with state_key "",
    and the create event counts too; it only matters for malformed or v12 conflicted creates.
    """
    sk = ev.state_key
    if sk is None:
        return False
    t = ev.type
    if sk == "" and (t == _PL or t == _JOIN_RULES or t == _CREATE):
        return True
    if t == _MEMBER:
        return ev.membership in ("leave", "ban") and ev.sender != sk
    return False


# --- auth chains -----------------------------------------------------------------------------


class _Chains:
    """Ancestor sets over the auth DAG, from the caller's index or by walking auth_events."""

    __slots__ = ("_events", "_auth_chain")

    def __init__(self, events: EventLookup, auth_chain: AuthChain | None) -> None:
        self._events = events
        self._auth_chain = auth_chain

    def closure(self, roots: Iterable[str], stop: set[str] | frozenset[str] = frozenset()) -> set[str]:
        """Roots and their auth ancestors, minus `stop` (which must be closed under ancestors,
        so a walk can end where it meets it)."""
        out: set[str] = set()
        chain = self._auth_chain
        if chain is not None:
            for r in roots:
                if r in stop or r in out:
                    continue  # already in: its ancestors are too
                out.add(r)
                out.update(chain(r).difference(stop))
            return out
        auth_ids = self._events.auth_ids
        stack = [r for r in roots if r not in stop]
        while stack:
            eid = stack.pop()
            if eid in out:
                continue
            out.add(eid)
            for a in auth_ids(eid):
                if a not in out and a not in stop:
                    stack.append(a)
        return out

    def reaches_any(self, eid: str, targets: set[str]) -> bool:
        """True if an auth ancestor of `eid` is in `targets` (index only)."""
        assert self._auth_chain is not None
        return not self._auth_chain(eid).isdisjoint(targets)

    @property
    def indexed(self) -> bool:
        return self._auth_chain is not None


def auth_difference(
    state_sets: Sequence[StateMap], events: EventLookup, auth_chain: AuthChain | None = None
) -> set[str]:
    """The auth difference of the state sets, computed by walking auth events (or through the
    `auth_chain` callable): the reference the index-based computation is tested against."""
    unconflicted, conflicted = separate(state_sets, missing_is_conflict=True)
    return _auth_difference(state_sets, unconflicted, flatten(conflicted), _Chains(events, auth_chain))


def _auth_difference(
    state_sets: Sequence[StateMap],
    unconflicted: Mapping[StateKey, str],
    conflicted_ids: set[str],
    chains: _Chains,
) -> set[str]:
    """fragments/v2-state-res.md §Auth difference: union minus intersection of the sets' chains.

    NOTSPEC: a state set's chain includes the set's own events (as in Synapse and Dendrite). It
    only differs from the spec wording for an unconflicted event that some chains reach and some
    do not, which the spec would replay and they do not.

    The unconflicted events' ancestors U are in every chain, so with D_i = chain(conflicted
    events of set i) - U the difference is union(D_i) - intersection(D_i): U is walked once and
    the per-set walks stop at it.
    """
    common = chains.closure(unconflicted.values())
    per_set = [
        chains.closure([eid for eid in s.values() if eid in conflicted_ids], common)
        for s in state_sets
    ]
    union = set().union(*per_set)
    return union.difference(per_set[0].intersection(*per_set[1:]))


def _conflicted_subgraph(conflicted_ids: set[str], chains: _Chains) -> set[str]:
    """rooms/v12.md §Conflicted state subgraph: every event on an auth path between two
    conflicted events, i.e. an ancestor of one that is also a descendant of one (endpoints
    included)."""
    back = chains.closure(conflicted_ids)
    if chains.indexed:
        return {x for x in back if x in conflicted_ids or chains.reaches_any(x, conflicted_ids)}
    # Walk forwards from the conflicted events over the reversed edges inside `back`.
    children: dict[str, list[str]] = {}
    auth_ids = chains._events.auth_ids
    for x in back:
        for a in auth_ids(x):
            if a in back:
                children.setdefault(a, []).append(x)
    seen = set(conflicted_ids)
    stack = list(conflicted_ids)
    while stack:
        for c in children.get(stack.pop(), ()):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


# --- reverse topological power ordering ------------------------------------------------------


def _reverse_topological_power_sort(
    power_ids: Iterable[str], full: set[str], events: EventLookup
) -> list[str]:
    """fragments/v2-state-res.md §Reverse topological power ordering, with step 1's enlarging.

    NOTSPEC: the DAG has the auth edges between events of the full conflicted set, and X grows
    along those edges only (as in Synapse and Dendrite). The spec's "auth chain of P that also
    belongs to the full conflicted set" would also take events reached through ones outside it.
    """
    parents: dict[str, set[str]] = {}
    stack = list(power_ids)
    while stack:
        eid = stack.pop()
        if eid in parents:
            continue
        ps = {a for a in events.auth_ids(eid) if a in full}
        parents[eid] = ps
        stack.extend(a for a in ps if a not in parents)

    children: dict[str, list[str]] = {eid: [] for eid in parents}
    outdegree: dict[str, int] = {}
    for eid, ps in parents.items():
        outdegree[eid] = len(ps)
        for p in ps:
            children[p].append(eid)

    levels = _SenderLevels(events)

    def key(eid: str) -> tuple[int | float, int, str]:
        ev = events(eid)
        return (-levels.of(ev), ev.origin_server_ts, eid)

    heap = [key(eid) for eid, n in outdegree.items() if n == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        eid = heapq.heappop(heap)[2]
        out.append(eid)
        for c in children[eid]:
            outdegree[c] -= 1
            if outdegree[c] == 0:
                heapq.heappush(heap, key(c))
    return out


class _SenderLevels:
    """Sender power levels "when looking at their respective auth_events", cached per
    (power levels event, create event, sender): thousands of events share a few of each."""

    __slots__ = ("_events", "_cache")

    def __init__(self, events: EventLookup) -> None:
        self._events = events
        self._cache: dict[tuple[str | None, str | None, str], int | float] = {}

    def of(self, ev: Event) -> int | float:
        pl: Event | None = None
        create: Event | None = None
        for aid in self._events.auth_ids(ev.event_id):
            a = self._events.maybe(aid)
            # Rejected auth events still count: the ordering only reads the event's own claims.
            if a is None or a.state_key != "":
                continue
            if a.type == _PL:
                pl = a
            elif a.type == _CREATE:
                create = a
        cid = create_event_id(ev)
        if cid is not None:
            create = self._events(cid, "create event")
        if create is None:
            # Only the create event itself (or a malformed event) has no create to look at.
            return 0
        k = (pl.event_id if pl is not None else None, create.event_id, ev.sender)
        level = self._cache.get(k)
        if level is None:
            level = user_power_level(ev.sender, pl, create)
            self._cache[k] = level
        return level


# --- mainline ordering -----------------------------------------------------------------------


def _mainline_sort(ids: list[str], resolved_pl: str | None, events: EventLookup) -> list[str]:
    """fragments/v2-state-res.md §Mainline ordering based on the resolved power levels."""
    if not ids:
        return []

    pl_parent: dict[str, str | None] = {}

    def parent_pl(eid: str) -> str | None:
        """The first m.room.power_levels event among the auth events (missing ones skipped)."""
        if eid in pl_parent:
            return pl_parent[eid]
        found = None
        for aid in events.auth_ids(eid):
            a = events.maybe(aid)
            if a is not None and a.type == _PL and a.state_key == "":
                found = aid
                break
        pl_parent[eid] = found
        return found

    position: dict[str, int] = {}
    p = resolved_pl
    while p is not None and p not in position:
        position[p] = len(position)
        p = parent_pl(p)
    not_on_mainline = len(position)  # the spec's infinity: beyond every real position

    def mainline_position(eid: str) -> int:
        path: list[str] = []
        p = parent_pl(eid)
        while p is not None and p not in position:
            path.append(p)
            p = parent_pl(p)
        pos = position[p] if p is not None else not_on_mainline
        for q in path:  # memoise: events share their power levels ancestry
            position[q] = pos
        return pos

    def key(eid: str) -> tuple[int, int, str]:
        return (-mainline_position(eid), events(eid).origin_server_ts, eid)

    return sorted(ids, key=key)


# --- iterative auth checks -------------------------------------------------------------------


class _AuthChecker:
    """fragments/v2-state-res.md §Iterative auth checks."""

    __slots__ = ("_rv", "_events")

    def __init__(self, room_version: RoomVersion, events: EventLookup) -> None:
        self._rv = room_version
        self._events = events

    def apply(self, ordered: Iterable[str], base: dict[StateKey, str]) -> dict[StateKey, str]:
        state = base
        for eid in ordered:
            ev = self._events(eid)
            if ev.rejected_reason is not None:
                # NOTSPEC: a rejected event never enters state (Synapse, synapse#13797), even
                # if it would now pass; rejected auth events are skipped per the spec.
                continue
            try:
                check_auth(ev, self._auth_events(ev, state))
            except AuthError:
                continue
            state[ev.state_tuple] = eid
        return state

    def _auth_events(self, ev: Event, state: Mapping[StateKey, str]) -> dict[StateKey, Event]:
        """The state's events for the keys the rules need, falling back on the event's own
        non-rejected auth events for keys the state lacks."""
        events = self._events
        auth: dict[StateKey, Event] = {}
        for aid in events.auth_ids(ev.event_id):
            a = events.maybe(aid)
            if a is not None and a.rejected_reason is None and a.state_key is not None:
                auth[a.state_tuple] = a
        for key in auth_types_for_event(self._rv, ev.type, ev.state_key, ev.sender, ev.content):
            sid = state.get(key)
            if sid is not None:
                s = events(sid, "resolved state")
                if s.rejected_reason is None:
                    auth[key] = s
        if CREATE_KEY not in auth:
            cid = create_event_id(ev)
            if cid is not None:
                # v12: auth_events omit the create event but the rules always need it.
                sid = state.get(CREATE_KEY, cid)
                auth[CREATE_KEY] = events(sid, "create event")
        return auth
