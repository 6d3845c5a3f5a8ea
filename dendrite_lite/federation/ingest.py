"""Events from other servers: the road every federation endpoint takes (/send, send_join,
backfill, invites), the same steps as a local event (DESIGN.md §The event pipeline).

Per PDU (server-server-api.md §Checks performed on receipt of a PDU):
1. room version from our rooms table; format (dropped if invalid);
2. signatures (dropped if wrong), content hash (redacted if wrong);
3. fetch what is missing: auth events (/event_auth), prev events (/get_missing_events), and
   when a gap remains before a fetched event, the state at it (/state_ids + /event); an event
   sent to us whose prev events stay missing is dropped, as by Synapse;
4. auth against its auth events, then against the state before it (resolved over its prev
   events' states): failure = rejected, stored with the reason and never in any state;
5. against the current state: failure = soft failed, stored but no forward extremity, not in
   the current state, not shown to clients;
6. persisted in one transaction under the room's lock (the local pipeline's lock), then local
   users are notified.

The current state is kept equal to the resolved state of the forward extremities after every
event, so a local event (which cites every extremity, rooms/pipeline.py) finds the state before
it in the current state. When an event forks the room, that resolution includes the event itself
before it is stored; every event of the state sets' auth chains must be at hand, and ones we lack
are fetched from the origin (outside the room lock) before trying again. An event whose state
cannot be resolved is dropped rather than stored with a state that ignores another branch.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.events.auth import auth_types_for_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.ids import compute_event_id
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.federation.checks import (
    PduDropped,
    auth_event_ids_needed,
    check_against_auth_events,
    check_against_state,
    parse_pdu,
    verify_pdu,
)
from dendrite_lite.federation.membership_events import MEMBER
from dendrite_lite.federation.missing_events import (
    FederationRequester,
    FetchLimits,
    MissingEventsFetcher,
)
from dendrite_lite.federation.outliers import persist_outliers
from dendrite_lite.federation.state_at import StateAt, StateLoader, StateMap, StateUnavailable
from dendrite_lite.federation.timeline_write import (
    CurrentStateChange,
    TimelineWrite,
    state_diff,
    write_timeline_event,
)
from dendrite_lite.rooms.notifications import PersistHook
from dendrite_lite.rooms.pipeline import PersistedEvent
from dendrite_lite.storage import Storage
from dendrite_lite.storage import auth_chains
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.sync.notifier import Notifier

__all__ = [
    "FederationIngest",
    "FederationRequester",
    "FetchLimits",
    "PduDropped",
    "Outcome",
    "MAX_PDUS_PER_TRANSACTION",
]

log = logging.getLogger(__name__)

MAX_PDUS_PER_TRANSACTION = 50  # server-server-api.md §Transactions
_CREATE_KEY: StateKey = ("m.room.create", "")
_REPORT_VERSION = get_room_version("10")
# Check-and-persist tries per event: each retry follows a fetch of the events state resolution
# lacked (one fetch normally completes the chains; a second covers ancestors found behind them).
_RESOLVE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one event: stored (accepted, rejected with a reason, or soft failed)."""

    event: Event
    stream_ordering: int | None  # None: it was already held
    soft_failed: bool = False

    @property
    def rejected_reason(self) -> str | None:
        return self.event.rejected_reason


class FederationIngest:
    def __init__(
        self,
        storage: Storage,
        *,
        key_store: KeyStore,
        requester: FederationRequester,
        notifier: Notifier,
        room_lock: Callable[[str], asyncio.Lock] | None = None,
        persist_hooks: Sequence[PersistHook] = (),
        limits: FetchLimits = FetchLimits(),
    ) -> None:
        """`room_lock` must be the local pipeline's (RoomPipeline.room_lock) so local and remote
        events of one room never interleave; `persist_hooks` are the pipeline's (unread counts)."""
        self._storage = storage
        self._keys = key_store
        self._notifier = notifier
        self._fetcher = MissingEventsFetcher(storage, requester, key_store, limits)
        self._loader = StateLoader(storage)
        self._persist_hooks = list(persist_hooks)
        self._own_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._room_lock = room_lock or self._private_lock
        # Told of every event stored in a room's timeline, rejected ones too (metrics).
        self.on_persisted: Callable[[Event], None] | None = None

    @property
    def persist_hooks(self) -> tuple[PersistHook, ...]:
        """The hooks every stored event goes through (out-of-band invites use them too)."""
        return tuple(self._persist_hooks)

    def _private_lock(self, room_id: str) -> asyncio.Lock:
        lock = self._own_locks.get(room_id)
        if lock is None:
            lock = self._own_locks[room_id] = asyncio.Lock()
        return lock

    # --- public ------------------------------------------------------------------------------
    async def receive_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, dict[str, str]]:
        """The PDUs of a /send transaction from `origin`, in order. Returns the response's
        `pdus` map: event id -> {} when processed, rejected ones included, {"error": why} when
        dropped (not stored at all). At most MAX_PDUS_PER_TRANSACTION are looked at (the handler
        refuses bigger ones)."""
        results: dict[str, dict[str, str]] = {}
        for raw in list(pdus)[:MAX_PDUS_PER_TRANSACTION]:
            try:
                outcome = await self.receive_pdu(origin, raw)
            except PduDropped as e:
                key = await self._event_id_for_report(raw)
                log.info("dropped PDU %s from %s: %s", key, origin, e.reason)
                if key is not None:
                    results[key] = {"error": e.reason}
                continue
            # A rejected event was processed (stored as rejected, logged by the check): {}, as
            # Synapse answers; `error` is for PDUs that could not be processed at all, which
            # the origin may send again (SyTest's federation tests expect this split).
            results[outcome.event.event_id] = {}
        return results

    async def receive_pdu(
        self, origin: str, raw: Any, *, extra_hooks: Sequence[PersistHook] = ()
    ) -> Outcome:
        """One PDU from `origin` through the whole pipeline. Raises PduDropped.
        `extra_hooks`: persist hooks for this event only, run (like the pipeline's) when it
        is stored as an accepted, visible event (send_join: forwarding it to the room)."""
        rv = await self._room_version(raw)
        event = parse_pdu(raw, rv)
        held = await self._held(event.event_id)
        if held is not None:
            return held
        event = await verify_pdu(event, self._keys)
        return await self._process(origin, event, fetch_prevs=True, extra_hooks=extra_hooks)

    async def persist_join_state(
        self,
        room_version: RoomVersion,
        state_pdus: Sequence[Any],
        auth_chain_pdus: Sequence[Any],
        join_event: Any,
    ) -> PersistedEvent:
        """A send_join answer: verify the state and auth chain (format, hashes, signatures, auth
        against their auth events in auth order), store them as outliers, then the join event
        as the room's first timeline event with that state as the state before it.
        Raises PduDropped if the join cannot be stored as an accepted event.
        The same as verified_join, store_join_state and persist_join one after the other;
        a caller holding a big answer calls those and drops the answer after the second."""
        join = await self.verified_join(room_version, join_event)
        state = await self.store_join_state(join, state_pdus, auth_chain_pdus)
        return await self.persist_join(join, state)

    async def verified_join(self, room_version: RoomVersion, join_event: Any) -> Event:
        """Our join event as the resident server answered it, checked. Raises PduDropped."""
        return await verify_pdu(parse_pdu(join_event, room_version), self._keys)

    async def store_join_state(
        self, join: Event, state_pdus: Sequence[Any], auth_chain_pdus: Sequence[Any]
    ) -> StateMap:
        """Verify the state and auth chain of a send_join answer and store them as outliers
        (and the room); returns the accepted state. Raises PduDropped."""
        rv, room_id = join.room_version, join.room_id
        state_events = await self._fetcher.verified(state_pdus, rv, room_id)
        chain_events = await self._fetcher.verified(auth_chain_pdus, rv, room_id)
        # Indexed by persist_join: the parsed answer is gone by then, and the index's working
        # set (a few structures per event) takes its place instead of adding to it.
        held = await persist_outliers(self._storage, [*chain_events, *state_events], index=False)
        state: StateMap = {}
        for e in state_events:
            h = held.get(e.event_id)
            if h is not None and h.is_state() and h.rejected_reason is None:
                state[h.state_tuple] = h.event_id
        create_id = state.get(_CREATE_KEY)
        if create_id is None:
            raise PduDropped("the room state has no acceptable m.room.create event")
        create = held[create_id]
        await self._storage.db.write(
            lambda c: rooms_table.insert_room(
                c, room_id=room_id, room_version=rv.identifier, creator=create.sender,
                created_ts=create.origin_server_ts,
            )
        )
        return state

    async def persist_join(self, join: Event, state: StateMap) -> PersistedEvent:
        """Our join as the room's first timeline event, `state` (store_join_state's) the state
        before it. Raises PduDropped if it is not accepted."""
        state_ids = list(state.values())
        await self._storage.db.write(lambda c: auth_chains.index_events(c, state_ids))
        outcome = await self._persist_resolving(None, join, state)
        if outcome.rejected_reason is not None or outcome.soft_failed:
            raise PduDropped(f"join event not accepted: {outcome.rejected_reason or 'soft failed'}")
        position = outcome.stream_ordering
        if position is None:
            stored = await self._storage.db.read(lambda c: events_table.select_event(c, join.event_id))
            assert stored is not None
            position = stored.stream_ordering
        return PersistedEvent(outcome.event, position)

    # --- steps ---------------------------------------------------------------------------------
    async def _room_version(self, raw: Any) -> RoomVersion:
        room_id = raw.get("room_id") if isinstance(raw, Mapping) else None
        if not isinstance(room_id, str):
            raise PduDropped("invalid event: no room_id")
        room = await self._storage.db.read(lambda c: rooms_table.select_room(c, room_id))
        if room is None:
            raise PduDropped(f"unknown room {room_id}")
        return get_room_version(room.room_version)

    async def _event_id_for_report(self, raw: Any) -> str | None:
        """The id to report a dropped PDU under: by its room's version, or for an unknown room
        as a v4+ event id (v1/v2 PDUs carry theirs)."""
        if isinstance(raw, Mapping) and isinstance(raw.get("event_id"), str):
            return raw["event_id"]  # type: ignore[no-any-return]
        try:
            rv = await self._room_version(raw)
        except PduDropped:
            rv = _REPORT_VERSION
        try:
            return compute_event_id(raw, rv)
        except Exception:  # not even an id: nothing to key the error by
            return None

    async def _held(self, event_id: str) -> Outcome | None:
        """The outcome of an event held as a timeline event (accepted, rejected or soft
        failed) already; None if unknown or held only as an outlier."""
        stored = await self._storage.db.read(lambda c: events_table.select_event(c, event_id))
        if stored is None:
            return None
        settled = (
            not stored.outlier
            or stored.state_group is not None
            or stored.event.rejected_reason is not None
        )
        return Outcome(stored.event, None, stored.soft_failed) if settled else None

    async def _process(
        self, origin: str, event: Event, *, fetch_prevs: bool, extra_hooks: Sequence[PersistHook] = ()
    ) -> Outcome:
        """Fetch what `event` lacks, then check and persist it under the room lock."""
        await self._fetcher.ensure_auth_events(origin, event)
        lacking = await self._fetcher.unknown(auth_event_ids_needed(event))
        if lacking:
            raise PduDropped(f"auth events unavailable: {', '.join(lacking)}")
        if fetch_prevs and await self._prevs_without_state(event):
            await self._fill_gap(origin, event)
        state: StateMap | None = None
        if await self._prevs_without_state(event):
            if fetch_prevs:
                # As from Synapse (SyTest "Federation rejects inbound events where the
                # prev_events cannot be found"): an event sent to us whose prev events the
                # origin does not give us is dropped. The state is asked (/state_ids) only at
                # the gaps of events we fetched, which is how a long gap is bridged.
                raise PduDropped("prev events missing and the origin did not send them")
            state = await self._state_over_gaps(origin, event)
            if state is None:
                raise PduDropped("prev events missing and the origin gave no state at them")
        return await self._persist_resolving(origin, event, state, extra_hooks)

    async def _persist_resolving(
        self, origin: str | None, event: Event, state: StateMap | None,
        extra_hooks: Sequence[PersistHook] = (),
    ) -> Outcome:
        """Check and persist `event` under the room lock. When state resolution lacks events,
        fetch them from `origin` with the lock released (a slow server must not hold up the
        room's local sends) and try again. Raises PduDropped when the state stays unresolvable."""
        why = ""
        for _ in range(_RESOLVE_ATTEMPTS):
            async with self._room_lock(event.room_id):
                held = await self._held(event.event_id)
                if held is not None:
                    return held
                try:
                    return await self._check_and_persist(event, state, extra_hooks)
                except StateUnavailable as e:
                    missing, why = sorted(e.missing), str(e)
            if not missing or origin is None:
                break
            log.info("fetching %d events from %s to resolve the state at %s",
                     len(missing), origin, event.event_id)
            await self._fetcher.fetch_events(origin, event.room_version, event.room_id, missing)
        log.warning("dropping %s: cannot resolve the room state: %s", event.event_id, why)
        raise PduDropped(f"cannot resolve the room state: {why}")

    async def _state_over_gaps(self, origin: str, event: Event) -> StateMap | None:
        """The state before a fetched event some of whose prev events we lack (or hold without
        state): the state after each such prev event as `origin` says it is, resolved with the
        state after the prev events we have, as Synapse does. None when one cannot be had."""
        lacking = await self._prevs_without_state(event)
        sets: list[StateMap] = []
        for prev in lacking:
            after = await self._fetcher.state_after_prev(origin, event, prev)
            if after is None:
                return None
            sets.append(after)
        held = [p for p in event.prev_event_ids if p not in lacking]
        for _ in range(_RESOLVE_ATTEMPTS):
            try:
                known = list((await self._loader.group_states(held)).values()) if held else []
                return await self._loader.resolve(event.room_version, [*sets, *known])
            except StateUnavailable as e:
                if not e.missing:
                    return None
                await self._fetcher.fetch_events(
                    origin, event.room_version, event.room_id, sorted(e.missing)
                )
        return None

    async def _prevs_without_state(self, event: Event) -> list[str]:
        prevs = event.prev_event_ids
        stored = await self._storage.db.read(lambda c: events_table.select_events(c, prevs))
        return [p for p in prevs if p not in stored or stored[p].state_group is None]

    async def _fill_gap(self, origin: str, event: Event) -> None:
        """/get_missing_events from our forward extremities to `event`; each event returned
        goes through the pipeline, oldest first (without a further /get_missing_events)."""
        extremities = await self._storage.db.read(
            lambda c: events_table.select_forward_extremities(c, event.room_id)
        )
        missing = await self._fetcher.missing_prev_events(origin, event, [e for e, _ in extremities])
        for prev in missing:
            try:
                await self._process(origin, prev, fetch_prevs=False)
            except PduDropped as e:
                log.info("missing event %s from %s not used: %s", prev.event_id, origin, e.reason)

    # --- auth and persistence (caller holds the room lock) --------------------------------------
    async def _check_and_persist(
        self, event: Event, state_before: StateMap | None, extra_hooks: Sequence[PersistHook] = ()
    ) -> Outcome:
        """Raises StateUnavailable (with `missing`) before writing anything when a state
        resolution lacks events."""
        rv = event.room_version
        auth_events = await self._loader.load_events(auth_event_ids_needed(event))
        reason = check_against_auth_events(event, auth_events)
        try:
            if state_before is None:
                before = await self._loader.state_after(rv, event.prev_event_ids)
            else:
                before = StateAt(dict(state_before), None, None, None)
        except StateUnavailable as e:
            if e.missing:
                raise
            raise PduDropped(f"cannot compute the state before the event: {e}") from None
        if reason is None:
            reason = await self._check_against(event, before.state)
        extremities = await self._storage.db.read(
            lambda c: events_table.select_forward_extremities(c, event.room_id)
        )
        old_ext = [e for e, _ in extremities]
        soft_failed = False
        loaded: dict[str, Event] = {}  # the two resolutions of a fork read the same events
        # No extremities: a room being joined has no current state to soft-fail against.
        if reason is None and old_ext and set(old_ext) != set(event.prev_event_ids):
            soft_failed = await self._fails_current_state(event, before, old_ext, loaded)
        if reason is None and not soft_failed and await self._redacts_another_room(event):
            # Withheld like a soft failure (in the graph, served over federation, never shown
            # to clients), as Synapse ignores it: a redaction only ever applies in its own room.
            log.info("%s redacts an event of another room", event.event_id)
            soft_failed = True
        checked = Event(event.pdu, rv, event.event_id, room_id=event.room_id, rejected_reason=reason)
        visible = reason is None and not soft_failed
        current = await self._current_change(checked, before, old_ext, loaded) if visible else None
        if reason is not None:
            log.info("rejected %s: %s", event.event_id, reason)
        elif soft_failed:
            log.info("soft failed %s", event.event_id)
        was_outlier = await self._storage.db.read(
            lambda c: events_table.select_event(c, event.event_id)
        ) is not None
        write = TimelineWrite(checked, before, soft_failed, current, was_outlier)
        in_txn = []
        if visible:
            hooks = [*self._persist_hooks, *extra_hooks]
            in_txn = [w for h in hooks if (w := await h(event.room_id, [checked])) is not None]

        async def persist(conn: aiosqlite.Connection) -> int:
            position = await write_timeline_event(conn, write)
            for w in in_txn:
                await w(conn, [(checked, position)])
            return position

        position = await self._storage.db.write(persist)
        if self.on_persisted is not None:
            self.on_persisted(checked)
        if visible:
            await self._notify(checked)
        return Outcome(checked, position, soft_failed)

    async def _check_against(self, event: Event, state: Mapping[StateKey, str]) -> str | None:
        keys = self._auth_keys(event)
        events = await self._loader.load_events(state[k] for k in keys if k in state)
        return check_against_state(
            event, {k: events[state[k]] for k in keys if k in state and state[k] in events}
        )

    @staticmethod
    def _auth_keys(event: Event) -> list[StateKey]:
        keys = auth_types_for_event(
            event.room_version, event.type, event.state_key, event.sender, event.content
        )
        return [*keys, _CREATE_KEY] if _CREATE_KEY not in keys else keys

    async def _redacts_another_room(self, event: Event) -> bool:
        target = event.redacts if event.type == "m.room.redaction" else None
        if target is None:
            return False
        held = await self._storage.db.read(lambda c: events_table.select_event(c, target))
        return held is not None and held.event.room_id != event.room_id

    async def _fails_current_state(
        self, event: Event, before: StateAt, old_ext: Sequence[str], loaded: dict[str, Event]
    ) -> bool:
        """Check 6 (soft failure) when the event does not extend exactly our forward
        extremities: "current state" is then the resolution of the state before the event with
        the states of the extremities it does not cite (the forward extremities once it is
        added), so a branch we learn only now, e.g. a member who joined there, counts; a ban on
        another branch still wins over this branch's older membership in that resolution."""
        others = [e for e in old_ext if e not in set(event.prev_event_ids)]
        groups = await self._loader.group_states(others) if others else {}
        state = await self._loader.resolve(
            event.room_version, [before.state, *groups.values()], loaded=loaded
        )
        return await self._check_against(event, state) is not None

    async def _current_change(
        self, event: Event, before: StateAt, old_ext: Sequence[str], loaded: dict[str, Event]
    ) -> CurrentStateChange:
        """The current state once `event` is a forward extremity: the resolved state of the new
        forward extremities (the event and the old ones it does not cite). The event is not
        stored yet, so the resolution gets it as a pending event."""
        prevs = set(event.prev_event_ids)
        after = dict(before.state)
        if event.is_state():
            after[event.state_tuple] = event.event_id
        others = [e for e in old_ext if e not in prevs]
        if set(old_ext) == prevs:
            # Linear: the state before the event was the current state.
            delta = {event.state_tuple: event.event_id} if event.is_state() else {}
            return CurrentStateChange(await self._with_membership(delta, {event.event_id: event}), None)
        resolved: StateMap | None = None
        new_current = after
        if others:
            groups = await self._loader.group_states(others)
            new_current = await self._loader.resolve(
                event.room_version, [after, *groups.values()], {event.event_id: event}, loaded
            )
            resolved = new_current
        old_current = await self._storage.db.read(
            lambda c: state_table.select_current_state(c, event.room_id)
        )
        diff = state_diff(old_current, new_current)
        return CurrentStateChange(await self._with_membership(diff, {event.event_id: event}), resolved)

    async def _with_membership(
        self, delta: Mapping[StateKey, str | None], known: Mapping[str, Event]
    ) -> dict[StateKey, tuple[str, str | None] | None]:
        ids = [v for k, v in delta.items() if v is not None and v not in known and k[0] == MEMBER]
        memberships = await self._storage.db.read(lambda c: events_table.select_memberships(c, ids))
        memberships.update((eid, ev.membership) for eid, ev in known.items())
        out: dict[StateKey, tuple[str, str | None] | None] = {}
        for key, eid in delta.items():
            if eid is None:
                out[key] = None
            else:
                out[key] = (eid, memberships.get(eid) if key[0] == MEMBER else None)
        return out

    async def _notify(self, event: Event) -> None:
        members = set(
            await self._storage.db.read(lambda c: state_table.select_members(c, event.room_id, "join"))
        )
        if event.type == "m.room.member" and event.state_key:
            members.add(event.state_key)
        self._notifier.notify(members)
