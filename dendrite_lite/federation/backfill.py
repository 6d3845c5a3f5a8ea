"""Backfill (server-server-api.md §Backfilling and retrieving missing events): when a client
paginates past the oldest event we hold of a room joined over federation, ask a server in the
room for the events before it (/backfill) and store them before everything else in the stream
(negative stream orderings: they never wake a /sync and sort before every live event).

Each event of the answer, oldest (lowest depth) first:
1. the checks of any received PDU (§Checks performed on receipt of a PDU): format, signatures,
   content hash; auth events we lack are fetched (/event_auth); then auth against its auth
   events. Batch events are stored as outliers at this point (rejected ones with the reason), so
   state resolution and the auth checks below can read them. An event whose auth events stay
   unknown is left out.
2. the state before it: when every prev event is held with a state (held before, or earlier in
   this batch), the resolution of the states after them (no resolution when they agree);
   otherwise the state before it as the server says (/state_ids at the event; the state events
   we lack are fetched and checked as outliers). An event whose state cannot be had is left out
   rather than given an approximate one: history visibility reads that state.
3. auth against the state before it: failure = rejected (stored with the reason and the state
   before it, as the ingest pipeline does, and never shown to clients).
Then everything is written in one transaction: each event's state groups (the state after an
accepted state event is the state before it plus the event), its row at a negative position
(older events lower), redaction links. Backfilled events never change the current state or the
forward extremities and are not soft-failure checked: they are history (as in Synapse, whose
`_process_pulled_events` skips both for backfilled events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.events.auth import auth_types_for_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.federation.checks import auth_event_ids_needed, check_against_state
from dendrite_lite.federation.missing_events import FetchLimits, MissingEventsFetcher
from dendrite_lite.federation.outliers import persist_outliers
from dendrite_lite.federation.requester import ClientRequester
from dendrite_lite.federation.state_at import StateLoader, StateMap, StateUnavailable
from dendrite_lite.federation.timeline_write import state_diff
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.storage import purge as purge_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table

__all__ = ["Backfiller"]

log = logging.getLogger(__name__)

# Oldest timeline events looked at for prev events we lack.
_EDGE = 20
# Asked of the server however few events the page wants, as Synapse asks 100: a batch that
# reaches back to events whose state we hold (the create event of a young room, or our join's
# state) can be placed without /state_ids, which servers may not serve; and the next pages
# need no round trip.
MIN_BATCH = 100
# Steps back past events held with a state but outside the timeline, looking for a gap.
_EDGE_WALK = 10
_CREATE_KEY: StateKey = ("m.room.create", "")

# A state group: a stored group's id, or the id of an event of the batch being planned (the
# group of the state after it, known once that event is written).
_GroupRef = int | str


@dataclass(frozen=True, slots=True)
class _Before:
    """The state before an event; `exact`: a group holding exactly it; `base`: a group and its
    state close to it (the parent of a delta)."""

    state: StateMap
    exact: _GroupRef | None = None
    base: tuple[_GroupRef, StateMap] | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    event: Event  # rejected_reason set when rejected
    before: _Before


class Backfiller:
    def __init__(
        self,
        storage: Storage,
        requester: ClientRequester,
        key_store: KeyStore,
        *,
        server_name: str,
        limits: FetchLimits = FetchLimits(),
        room_lock: Callable[[str], asyncio.Lock] | None = None,
        min_batch: int = MIN_BATCH,
    ) -> None:
        """`room_lock`: the local pipeline's (RoomPipeline.room_lock), held while the batch is
        written, so an event the ingest pipeline is storing at the same time (it checks and
        writes under that lock) is stored by one of the two only. `min_batch`: tests of
        batch boundaries lower it."""
        self._storage = storage
        self._min_batch = min_batch
        self._room_lock = room_lock
        self._requester = requester
        self._keys = key_store
        self._server_name = server_name
        self._fetcher = MissingEventsFetcher(storage, requester, key_store, limits)
        self._loader = StateLoader(storage)
        # One backfill of a room at a time: two clients paginating together fetch once.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def backfill(self, room_id: str, limit: int) -> int:
        """Fetch up to `max(limit, min_batch)` events before the oldest we hold; returns how
        many were stored (rejected ones included)."""
        async with self._lock(room_id):
            return await self._backfill(room_id, max(limit, self._min_batch))

    async def _backfill(self, room_id: str, limit: int) -> int:
        oldest, missing, servers, version = await self._storage.db.read(lambda c: _edge(c, room_id))
        servers.discard(self._server_name)
        if not oldest or not missing or not servers or version is None:
            return 0
        rv = get_room_version(version)
        for server in sorted(servers):
            try:
                raws = await self._requester.backfill(server, room_id, sorted(missing), limit)
            except Exception as e:  # unreachable or a bad answer: try the next server
                log.info("backfill of %s from %s failed: %r", room_id, server, e)
                continue
            events = await self._fetcher.verified(raws[:limit], rv, room_id)
            stored = await self._store(server, events)
            if stored:
                return stored
        return 0

    async def _store(self, origin: str, events: Sequence[Event]) -> int:
        batch = await self._as_outliers(origin, events)
        plans = await self._plan(origin, batch)
        if not plans:
            return 0
        room_id = plans[0].event.room_id
        lock = self._room_lock(room_id) if self._room_lock is not None else contextlib.nullcontext()
        async with lock:
            return await self._storage.db.write(lambda c: _write(c, plans))

    async def _as_outliers(self, origin: str, events: Sequence[Event]) -> list[Event]:
        """The events of the answer not in the timeline yet, checked against their auth events
        and held as outliers (with the rejection reason of that check), as held."""
        ids = list(dict.fromkeys(e.event_id for e in events))
        held = await self._storage.db.read(lambda c: events_table.select_events(c, ids))
        todo = [e for e in events if e.event_id not in held or _without_state(held[e.event_id])]
        in_batch = {e.event_id for e in todo}
        outside = {a for e in todo for a in auth_event_ids_needed(e) if a not in in_batch}
        lacking = set(await self._fetcher.unknown(outside))
        for event in todo:
            if lacking.intersection(auth_event_ids_needed(event)):
                await self._fetcher.ensure_auth_events(origin, event)
                lacking = set(await self._fetcher.unknown(lacking))
        kept = await persist_outliers(self._storage, todo)
        for e in todo:
            if e.event_id not in kept:
                log.info("backfilled %s left out: auth events unknown", e.event_id)
        return list(kept.values())

    async def _plan(self, origin: str, events: Sequence[Event]) -> list[_Planned]:
        """The state before each event and its auth check against it, oldest first."""
        after: dict[str, tuple[_GroupRef, StateMap]] = {}  # batch event -> the state after it
        loaded: dict[str, Event] = {}  # events read for resolutions, shared across the batch
        plans: list[_Planned] = []
        asks = [True]  # the server may still be asked for a state (one failure ends that)
        for event in sorted(events, key=lambda e: (e.depth, e.event_id)):
            before = await self._state_before(origin, event, after, loaded, asks)
            if before is None:
                log.info("backfilled %s left out: no state before it", event.event_id)
                continue
            reason = event.rejected_reason or await self._check_against(event, before.state, loaded)
            if reason is not None and event.rejected_reason is None:
                log.info("backfilled %s rejected against the state before it: %s", event.event_id, reason)
            checked = Event(event.pdu, event.room_version, event.event_id, room_id=event.room_id,
                            rejected_reason=reason)
            plans.append(_Planned(checked, before))
            if reason is None and event.is_state():
                after[event.event_id] = (event.event_id, {**before.state, event.state_tuple: event.event_id})
            else:  # the same state (and group) as before it; maps are shared, never changed
                ref = before.exact if before.exact is not None else event.event_id
                after[event.event_id] = (ref, before.state)
        return plans

    async def _state_before(
        self,
        origin: str,
        event: Event,
        after: Mapping[str, tuple[_GroupRef, StateMap]],
        loaded: dict[str, Event],
        asks: list[bool],
    ) -> _Before | None:
        prevs = list(dict.fromkeys(event.prev_event_ids))
        if not prevs:
            return _Before({})
        sets = await self._prev_states(prevs, after)
        if sets is None:  # a prev event we do not hold with a state: ask the server
            state = await self._fetcher.state_at(origin, event) if asks[0] else None
            if state is None:
                asks[0] = False  # a server that gave no state is not asked again this batch
                return None
            return _Before(state)
        distinct = list({ref: (ref, s) for ref, s in sets}.values())
        if len(distinct) == 1:
            ref, state = distinct[0]
            return _Before(state, exact=ref, base=(ref, state))
        rv = event.room_version
        for attempt in range(2):
            try:
                resolved = await self._loader.resolve(rv, [s for _, s in distinct], loaded=loaded)
                return _Before(resolved, base=distinct[0])
            except StateUnavailable as e:
                if not e.missing or attempt:
                    log.info("state before backfilled %s unresolvable: %s", event.event_id, e)
                    return None
                await self._fetcher.fetch_events(origin, rv, event.room_id, sorted(e.missing))
        return None

    async def _prev_states(
        self, prevs: Sequence[str], after: Mapping[str, tuple[_GroupRef, StateMap]]
    ) -> list[tuple[_GroupRef, StateMap]] | None:
        """The state after each prev event (from this batch or stored groups); None if one is
        not held with a state."""
        outside = [p for p in prevs if p not in after]

        async def read(conn: aiosqlite.Connection) -> dict[str, tuple[_GroupRef, StateMap]] | None:
            held = await events_table.select_events(conn, outside)
            # An event a history purge took out of the timeline keeps the state it had.
            purged = await purge_table.select_purged_state_groups(conn, outside)
            out: dict[str, tuple[_GroupRef, StateMap]] = {}
            states: dict[int, StateMap] = {}
            for p in outside:
                group = held[p].state_group if p in held else None
                group = purged.get(p) if group is None and p in held else group
                if group is None:
                    return None
                if group not in states:
                    states[group] = await state_table.select_state_group(conn, group)
                out[p] = (group, states[group])
            return out

        found = await self._storage.db.read(read) if outside else {}
        if found is None:
            return None
        return [after[p] if p in after else found[p] for p in prevs]

    async def _check_against(
        self, event: Event, state: Mapping[StateKey, str], loaded: dict[str, Event]
    ) -> str | None:
        """Check 5 (the auth rules against the state before the event): the reason, or None.
        `loaded`: events read already (gains the ones read now)."""
        keys = auth_types_for_event(
            event.room_version, event.type, event.state_key, event.sender, event.content
        )
        ids = {k: state[k] for k in {*keys, _CREATE_KEY} if k in state}
        loaded.update(await self._loader.load_events(i for i in ids.values() if i not in loaded))
        return check_against_state(event, {k: loaded[i] for k, i in ids.items() if i in loaded})


async def _write(conn: aiosqlite.Connection, plans: Sequence[_Planned]) -> int:
    """Write the planned events (oldest first) below every stream position held: state groups,
    rows (rejected ones as outliers), redaction links. Returns how many were written."""
    position = min(await events_table.select_min_stream_ordering(conn), 0) - len(plans) - 1
    groups: dict[str, int] = {}  # batch event -> the group of the state after it
    count = 0
    for plan in plans:
        position += 1
        event = plan.event
        held = await events_table.select_event(conn, event.event_id)
        if held is not None and not _without_state(held):  # stored meanwhile (e.g. /send)
            if held.state_group is not None:
                groups[event.event_id] = held.state_group
            continue
        group = await _store_before(conn, event.room_id, plan.before, groups)
        accepted = event.rejected_reason is None
        if accepted and event.is_state():
            group = await state_table.insert_state_group(
                conn, event.room_id, prev_group=group, delta={event.state_tuple: event.event_id}
            )
        groups[event.event_id] = group
        if held is not None:
            await remote_table.delete_outlier(conn, event.event_id)
            await purge_table.delete_purged_event(conn, event.event_id)
        await events_table.insert_event(
            conn, event, stream_ordering=position, outlier=not accepted, state_group=group
        )
        if accepted and event.type == "m.room.redaction" and event.redacts:
            await events_table.insert_redaction(conn, event.event_id, event.redacts)
        count += 1
    return count


async def _store_before(
    conn: aiosqlite.Connection, room_id: str, before: _Before, groups: Mapping[str, int]
) -> int:
    def group_of(ref: _GroupRef) -> int | None:
        return ref if isinstance(ref, int) else groups.get(ref)

    if before.exact is not None and (exact := group_of(before.exact)) is not None:
        return exact
    if before.base is not None and (base := group_of(before.base[0])) is not None:
        delta = state_diff(before.base[1], before.state)
        return await state_table.insert_state_group(conn, room_id, prev_group=base, delta=delta)
    return await state_table.insert_state_group(
        conn, room_id, prev_group=None, full_state=before.state
    )


def _without_state(s: events_table.StoredEvent) -> bool:
    """Held for its content only (room state from our join, an auth chain, a batch event
    checked as an outlier): it may still join the timeline."""
    return s.outlier and s.state_group is None


async def _edge(
    conn: aiosqlite.Connection, room_id: str
) -> tuple[list[events_table.StoredEvent], set[str], set[str], str | None]:
    """The room's oldest timeline events, the events before them we do not hold with a state
    (prev events of theirs, and of events before them that hold a state but are no timeline
    events, e.g. backfilled ones that were rejected), the servers in the room and its version."""
    room = await rooms_table.select_room(conn, room_id)
    oldest = await events_table.select_room_events(conn, room_id, limit=_EDGE, backwards=False)
    missing: set[str] = set()
    seen: set[str] = set()
    frontier = {p for s in oldest for p in s.event.prev_event_ids}
    for _ in range(_EDGE_WALK):
        frontier -= seen
        if not frontier:
            break
        seen |= frontier
        held = await events_table.select_events(conn, list(frontier))
        missing |= {p for p in frontier if p not in held or _without_state(held[p])}
        # Rejected (or soft-failed) events hold a state but no timeline place: look past them.
        frontier = {
            p for s in held.values() if s.outlier and not _without_state(s)
            for p in s.event.prev_event_ids
        }
    servers = await outbox_table.select_joined_servers(conn, room_id)
    return oldest, missing, servers, room.room_version if room is not None else None
