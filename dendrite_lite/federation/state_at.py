"""The state of a room at a point of its DAG, from stored state groups and state resolution.

- `state_after(event_ids)`: the state after a set of events we hold with state (the state before
  an event whose prev_events they are, or the current state for a set of forward extremities):
  one group if they all share it, else the resolution of their groups.
- `resolve(rv, state_sets, pending)`: state resolution with the events it needs loaded from
  storage first, since events.state_res does no I/O. v2/v2.1: the auth difference comes from
  the auth chain index (federation.auth_difference) and only the conflicted events, the
  difference, their auth ancestors and the state the checks read are loaded; v1, or when the
  index cannot answer (an auth ancestor we do not hold): every event of the sets and their auth
  chains (one recursive query). `pending` are events not stored yet (the event being received, whose state after it is
  one of the sets): the resolution sees them and their auth chains too. Every event of the sets
  and of their auth chains must be available; the ones we lack are named in
  StateUnavailable.missing so the caller can fetch them and try again (never a resolution over
  part of the events).

Reads only; callers hold the room's lock so what they read is still true when they write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import RoomVersion, StateResAlgorithm
from dendrite_lite.events.state_res import MissingEventError, resolve_state, split_conflicted
from dendrite_lite.federation.auth_difference import (
    POWER_LEVELS_KEY,
    indexed_auth_difference,
    state_read_by_checks,
)
from dendrite_lite.federation.checks import auth_event_ids_needed
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import state as state_table

__all__ = ["StateAt", "StateLoader", "StateUnavailable"]

StateMap = dict[StateKey, str]

# Reads of events the resolution asked for beyond what _resolve_with_difference loads up front
# (none in practice; bounded so a bug cannot loop).
_MAX_LATE_READS = 20


class StateUnavailable(LookupError):
    """The state cannot be computed from what we hold (an event without a state group, or an
    event state resolution needs is missing). `missing`: events we lack that would make it
    computable (empty when fetching events cannot help)."""

    def __init__(self, message: str, missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.missing = frozenset(missing)


@dataclass(frozen=True, slots=True)
class StateAt:
    """A state map plus, when one stored group holds exactly this state, that group's id;
    otherwise `base_group` is a stored group close to it (a cheap parent for a delta)."""

    state: StateMap
    group: int | None
    base_group: int | None
    base_state: StateMap | None


class StateLoader:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def group_states(self, event_ids: Sequence[str]) -> dict[int, StateMap]:
        """group id -> state, for the groups holding the state after each of `event_ids`, in
        the order of the ids. Raises StateUnavailable if one has no state group."""

        async def groups(conn: aiosqlite.Connection) -> dict[int, StateMap]:
            stored = await events_table.select_events(conn, event_ids)
            out: dict[int, StateMap] = {}
            for eid in event_ids:
                s = stored.get(eid)
                if s is None or s.state_group is None:
                    raise StateUnavailable(f"no state at {eid}")
                if s.state_group not in out:
                    out[s.state_group] = await state_table.select_state_group(conn, s.state_group)
            return out

        return await self._storage.db.read(groups)

    async def state_after(self, rv: RoomVersion, event_ids: Sequence[str]) -> StateAt:
        """The (resolved) state after `event_ids`. Raises StateUnavailable."""
        by_group = await self.group_states(event_ids)
        if not by_group:
            return StateAt({}, None, None, None)
        first_group, first_state = next(iter(by_group.items()))
        if len(by_group) == 1:
            return StateAt(first_state, first_group, first_group, first_state)
        resolved = await self.resolve(rv, list(by_group.values()))
        return StateAt(resolved, None, first_group, first_state)

    async def resolve(
        self,
        rv: RoomVersion,
        state_sets: Sequence[StateMap],
        pending: Mapping[str, Event] | None = None,
        loaded: dict[str, Event] | None = None,
    ) -> StateMap:
        """State resolution over state sets of stored events and `pending` ones (not stored
        yet). Raises StateUnavailable, with `missing` set when events we lack are needed.
        `loaded`: stored events already read, which are not read again (and it gains the ones
        read now): resolutions of nearly the same sets in a row share their reads."""
        if not state_sets:
            return {}
        first = state_sets[0]
        if all(s == first for s in state_sets[1:]):
            return dict(first)
        pending = dict(pending or {})
        loaded = {} if loaded is None else loaded
        if rv.state_res is not StateResAlgorithm.V1:
            unconflicted, conflicted = split_conflicted(state_sets)
            diff = await indexed_auth_difference(
                self._storage, state_sets, unconflicted, conflicted, pending
            )
            if diff is not None:
                return await self._resolve_with_difference(
                    rv, state_sets, pending, loaded, conflicted, diff
                )
        ids = {eid for s in state_sets for eid in s.values()}
        ids.update(a for e in pending.values() for a in auth_event_ids_needed(e))
        ids.difference_update(pending)
        events, wanted = await self._load_closure(ids, loaded)
        missing = wanted - events.keys() - pending.keys()
        if missing:
            raise StateUnavailable(
                f"state resolution needs {len(missing)} events we lack", missing
            )
        events.update(pending)
        try:
            return resolve_state(rv, state_sets, events.get)
        except MissingEventError as e:  # e.g. an auth event the CTE could not see past
            raise StateUnavailable(str(e), [e.event_id]) from None

    async def _resolve_with_difference(
        self,
        rv: RoomVersion,
        state_sets: Sequence[StateMap],
        pending: dict[str, Event],
        loaded: dict[str, Event],
        conflicted: set[str],
        diff: set[str],
    ) -> StateMap:
        """v2/v2.1 with the auth difference from the index: loads the full conflicted set, its
        auth ancestors (power ordering, mainline, auth events of the checks), the sets' power
        levels and the state the checks look up; an event it still lacks is read when the
        resolution asks for it (MissingEventError) and the resolution runs again."""
        full = conflicted | diff
        roots = {s[POWER_LEVELS_KEY] for s in state_sets if POWER_LEVELS_KEY in s}
        roots |= full
        roots |= {a for e in pending.values() for a in auth_event_ids_needed(e)}
        events, _ = await self._load_closure(roots - pending.keys(), loaded)
        events.update(pending)
        extra = state_read_by_checks(events, full, state_sets)
        events.update(await self._load_into(extra, loaded))
        for _ in range(_MAX_LATE_READS):
            try:
                return resolve_state(rv, state_sets, events.get, auth_difference=diff)
            except MissingEventError as e:
                got = await self._load_into({e.event_id}, loaded)
                if e.event_id not in got:
                    raise StateUnavailable(str(e), [e.event_id]) from None
                events.update(got)
        raise StateUnavailable(f"state resolution kept asking for events ({_MAX_LATE_READS} reads)")

    async def _load_into(self, event_ids: set[str], loaded: dict[str, Event]) -> dict[str, Event]:
        """The stored events among `event_ids`, read unless in `loaded` (which gains them)."""
        todo = [i for i in event_ids if i not in loaded]
        if todo:
            stored = await self._storage.db.read(lambda c: events_table.select_events(c, todo))
            loaded.update((eid, s.event) for eid, s in stored.items())
        return {i: loaded[i] for i in event_ids if i in loaded}

    async def _load_closure(
        self, event_ids: set[str], loaded: dict[str, Event]
    ) -> tuple[dict[str, Event], set[str]]:
        """(the events we hold among `event_ids` and their auth ancestors, all those ids);
        events in `loaded` are taken from there, and the ones read are added to it."""

        async def load(conn: aiosqlite.Connection) -> set[str]:
            wanted = event_ids | await remote_table.select_auth_chain_ids(conn, event_ids)
            stored = await events_table.select_events(conn, [i for i in wanted if i not in loaded])
            loaded.update((eid, s.event) for eid, s in stored.items())
            return wanted

        wanted = await self._storage.db.read(load)
        return {i: loaded[i] for i in wanted if i in loaded}, wanted

    async def load_with_auth_chains(self, event_ids: Iterable[str]) -> dict[str, Event]:
        """The events and every auth ancestor of them that we hold."""
        return (await self._load_closure(set(event_ids), {}))[0]

    async def load_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return {}
        stored = await self._storage.db.read(lambda c: events_table.select_events(c, ids))
        return {eid: s.event for eid, s in stored.items()}
