"""What other servers may read from our copy of a room (server-server-api.md §Retrieving
events, §Backfilling and retrieving missing events, §Retrieving event authorisation
information, /timestamp_to_event).

Every method first checks the asking server:
- the room's server ACL (403 M_FORBIDDEN) where §Server Access Control Lists requires it;
- that it is in the room: one of its users is joined now, or (for the endpoints about one
  event) was joined at that event (403 M_FORBIDDEN otherwise, also for rooms we do not know,
  so a probe learns nothing);
and events are served as federation/server_visibility.py says (redacted when hidden).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.federation.acl import check_server_acl
from dendrite_lite.federation.checks import implied_create_id
from dendrite_lite.federation.server_visibility import MEMBER, pdus_for_server, server_memberships
from dendrite_lite.federation.state_at import StateLoader, StateUnavailable
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import federation_reads as reads_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.events import StoredEvent

__all__ = ["FederationReads", "RoomState", "MAX_BACKFILL", "MAX_MISSING_EVENTS"]

# Bounds on one request's work. Synapse caps /get_missing_events at 20 and peers ask for less.
MAX_BACKFILL = 100
MAX_MISSING_EVENTS = 20
DEFAULT_MISSING_EVENTS = 10  # get_missing_events `limit` default (spec)


@dataclass(frozen=True, slots=True)
class RoomState:
    """The state before an event and the auth chain of that state."""

    state: list[StoredEvent]
    auth_chain: list[StoredEvent]


def _not_found(what: str) -> MatrixError:
    return MatrixError(Errcode.NOT_FOUND, what)


def _forbidden(origin: str) -> MatrixError:
    return MatrixError(Errcode.FORBIDDEN, f"Server {origin} is not in the room")


class FederationReads:
    def __init__(self, storage: Storage, *, clock_ms: Callable[[], int] | None = None) -> None:
        self._storage = storage
        self._loader = StateLoader(storage)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    # --- public ------------------------------------------------------------------------------
    async def get_event(self, origin: str, event_id: str) -> dict[str, Any]:
        """GET /event/{eventId}: the PDU; 404 if we do not hold it, 403 if the origin has no
        business in its room."""
        stored = await self._event(event_id)
        if stored is None:
            raise _not_found(f"Event {event_id} not found")
        await self._require_in_room(origin, stored.event.room_id, at=stored)
        return (await self._pdus(origin, [stored]))[0]

    async def state(self, origin: str, room_id: str, event_id: str) -> RoomState:
        """/state and /state_ids: the state before the event and its auth chain."""
        await check_server_acl(self._storage, room_id, origin)
        stored = await self._event_in_room(origin, room_id, event_id)
        if stored.state_group is None:
            raise _not_found(f"No state known at {event_id}")
        if stored.event.rejected_reason is not None:
            # As from Synapse (SyTest checks it): a rejected event is not part of the room, so
            # nothing may be built on the state at it.
            raise _not_found(f"{event_id} was rejected")
        state_map = await self._state_before(stored)

        async def load(conn: aiosqlite.Connection) -> RoomState:
            ids = list(state_map.values())
            state = await events_table.select_events(conn, ids)
            chain_ids = await remote_table.select_auth_chain_ids(conn, ids)
            create = implied_create_id(stored.event)
            if create is not None:
                chain_ids.add(create)
            chain = await events_table.select_events(conn, chain_ids)
            return RoomState(
                [state[i] for i in ids if i in state], sorted(chain.values(), key=_depth_key)
            )

        return await self._storage.db.read(load)

    async def state_pdus(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """GET /state/{roomId}: {pdus, auth_chain}."""
        rs = await self.state(origin, room_id, event_id)
        return {
            "pdus": await self._pdus(origin, rs.state),
            "auth_chain": await self._pdus(origin, rs.auth_chain),
        }

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> list[dict[str, Any]]:
        """GET /event_auth/{roomId}/{eventId}: the event's auth chain (v12: with the create
        event, which its events do not cite)."""
        await check_server_acl(self._storage, room_id, origin)
        stored = await self._event_in_room(origin, room_id, event_id)

        async def load(conn: aiosqlite.Connection) -> list[StoredEvent]:
            ids = await remote_table.select_auth_chain_ids(conn, [event_id])
            create = implied_create_id(stored.event)
            if create is not None:
                ids.add(create)
            return sorted((await events_table.select_events(conn, ids)).values(), key=_depth_key)

        return await self._pdus(origin, await self._storage.db.read(load))

    async def backfill(
        self, origin: str, room_id: str, event_ids: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """GET /backfill/{roomId}: the `v` events and those before them (breadth first along
        prev_events), at most `limit`, deepest first."""
        await check_server_acl(self._storage, room_id, origin)
        await self._require_in_room(origin, room_id)
        limit = max(0, min(limit, MAX_BACKFILL))
        found: dict[str, StoredEvent] = {}
        frontier = list(dict.fromkeys(event_ids))
        while frontier and len(found) < limit:
            batch = await self._events(frontier)
            nxt: list[str] = []
            for eid in frontier:
                s = batch.get(eid)
                if s is None or eid in found or not _servable(s, room_id):
                    continue
                if len(found) >= limit:
                    break
                found[eid] = s
                nxt.extend(p for p in s.event.prev_event_ids if p not in found)
            frontier = list(dict.fromkeys(nxt))
        ordered = sorted(found.values(), key=_depth_key, reverse=True)
        return await self._pdus(origin, ordered)

    async def get_missing_events(
        self,
        origin: str,
        room_id: str,
        earliest: Sequence[str],
        latest: Sequence[str],
        limit: int,
        min_depth: int,
    ) -> list[dict[str, Any]]:
        """POST /get_missing_events/{roomId}: breadth first along the prev_events of `latest`,
        skipping `earliest` and events below `min_depth`, at most `limit`, oldest first."""
        await check_server_acl(self._storage, room_id, origin)
        await self._require_in_room(origin, room_id)
        limit = max(0, min(limit, MAX_MISSING_EVENTS))
        seen = set(earliest) | set(latest)
        heads = await self._events(latest)
        frontier = [
            p for eid in latest if (s := heads.get(eid)) is not None and s.event.room_id == room_id
            for p in s.event.prev_event_ids
        ]
        found: list[StoredEvent] = []
        while frontier and len(found) < limit:
            frontier = [e for e in dict.fromkeys(frontier) if e not in seen]
            batch = await self._events(frontier)
            nxt: list[str] = []
            for eid in frontier:
                seen.add(eid)
                s = batch.get(eid)
                if s is None or not _servable(s, room_id) or s.event.depth < min_depth:
                    continue
                if len(found) >= limit:
                    break
                found.append(s)
                nxt.extend(s.event.prev_event_ids)
            frontier = nxt
        return await self._pdus(origin, sorted(found, key=_depth_key))

    async def timestamp_to_event(
        self, origin: str, room_id: str, ts: int, *, forwards: bool
    ) -> tuple[str, int]:
        """GET /timestamp_to_event/{roomId}: (event_id, origin_server_ts) of the closest event
        we hold; 404 if none."""
        await check_server_acl(self._storage, room_id, origin)
        await self._require_in_room(origin, room_id)
        found = await self._storage.db.read(
            lambda c: history_table.select_event_near_ts(c, room_id, ts, forwards=forwards)
        )
        if found is None:
            direction = "forward" if forwards else "backward"
            raise _not_found(f"Unable to find event from {ts} in {direction} direction")
        return found.event.event_id, found.event.origin_server_ts

    # --- access ------------------------------------------------------------------------------
    async def _require_in_room(self, origin: str, room_id: str, *, at: StoredEvent | None = None) -> None:
        joined = await self._storage.db.read(lambda c: outbox_table.select_joined_servers(c, room_id))
        if origin in joined:
            return
        if at is not None and at.state_group is not None and "join" in await self._memberships_at(origin, at.state_group):
            return
        raise _forbidden(origin)

    async def _memberships_at(self, origin: str, group: int) -> set[str]:
        async def load(conn: aiosqlite.Connection) -> set[str]:
            state = (await history_table.select_state_for_groups(conn, [group], types=[MEMBER]))[group]
            suffix = ":" + origin
            ids = [eid for (_, sk), eid in state.items() if sk.endswith(suffix)]
            return server_memberships(state, await events_table.select_events(conn, ids), origin)

        return await self._storage.db.read(load)

    # --- loading -----------------------------------------------------------------------------
    async def _event(self, event_id: str) -> StoredEvent | None:
        return await self._storage.db.read(lambda c: events_table.select_event(c, event_id))

    async def _events(self, event_ids: Sequence[str]) -> dict[str, StoredEvent]:
        return await self._storage.db.read(lambda c: events_table.select_events(c, event_ids))

    async def _event_in_room(self, origin: str, room_id: str, event_id: str) -> StoredEvent:
        """The event, once `origin` may ask about it: 403 for a server not in the room (checked
        first, so an outsider cannot probe which events exist), then 404 if unknown."""
        stored = await self._event(event_id)
        if stored is None or stored.event.room_id != room_id:
            await self._require_in_room(origin, room_id)
            raise _not_found(f"Event {event_id} not found in {room_id}")
        await self._require_in_room(origin, room_id, at=stored)
        return stored

    async def _pdus(self, origin: str, events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
        now = self._clock_ms()
        return await self._storage.db.read(lambda c: pdus_for_server(c, origin, events, now))

    async def _state_before(self, stored: StoredEvent) -> dict[StateKey, str]:
        """The state before the event. A non-state or rejected event's group is exactly that;
        for an accepted state event it is the (resolved) state after its prev events, or, when
        those have no state with us (the first event after our join), its group's parent."""
        event = stored.event
        group = stored.state_group
        assert group is not None
        after = await self._storage.db.read(lambda c: state_table.select_state_group(c, group))
        if not event.is_state() or event.rejected_reason is not None:
            return after
        if not event.prev_event_ids:
            return {}
        try:
            return dict((await self._loader.state_after(event.room_version, event.prev_event_ids)).state)
        except StateUnavailable:
            pass
        return await self._storage.db.read(lambda c: _parent_state(c, group, event, after))


async def _parent_state(
    conn: aiosqlite.Connection, group: int, event: Event, after: dict[StateKey, str]
) -> dict[StateKey, str]:
    parent = await reads_table.select_state_group_parent(conn, group)
    if parent is not None:
        before = await state_table.select_state_group(conn, parent)
        if {**before, event.state_tuple: event.event_id} == after:
            return before
    # No delta to undo: the state without the event's own entry is the best we know.
    return {k: v for k, v in after.items() if k != event.state_tuple}


def _servable(s: StoredEvent, room_id: str) -> bool:
    """Events we hand out along the DAG: of the room, not rejected (outliers are fine: the
    asking server checks them itself)."""
    return s.event.room_id == room_id and s.event.rejected_reason is None


def _depth_key(s: StoredEvent) -> tuple[int, int, str]:
    return s.event.depth, s.stream_ordering, s.event.event_id
