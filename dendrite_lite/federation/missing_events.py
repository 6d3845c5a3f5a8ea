"""Fetching what a received event needs and we do not hold (DESIGN.md §The event pipeline, step
2): its auth chain (/event_auth), its missing prev events (/get_missing_events), and, when a gap
remains, the state at it (/state_ids + /event).

All requests go through a `FederationRequester` (the federation client implements it; unit tests
use a fake over an in-memory DAG). Every fetched PDU gets the same checks as one received in a
transaction (format, signatures, hashes); ones that fail are left out. Work is bounded: each
request has a timeout, /get_missing_events asks for at most `limit` events within `depth` of the
event, and the state fetch takes at most `max_state_events` events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.federation.checks import (
    PduDropped,
    auth_event_ids_needed,
    parse_pdu,
    verify_pdu,
)
from dendrite_lite.federation.outliers import persist_outliers
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import remote_events as remote_table

__all__ = ["FederationRequester", "FetchLimits", "MissingEventsFetcher"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# ensure_auth_events <-> fetch_events recursion depth: a forged auth DAG cannot make us fetch
# forever; real chains are complete after one /event_auth.
_MAX_NESTING = 3


class FederationRequester(Protocol):
    """The outbound federation requests the ingest pipeline makes (spec: server-server-api.md
    §Backfilling and retrieving missing events, §Retrieving events, §Retrieving event
    authorisation information). Implementations raise any exception on failure."""

    async def get_missing_events(
        self,
        destination: str,
        room_id: str,
        earliest_events: Sequence[str],
        latest_events: Sequence[str],
        limit: int,
        min_depth: int,
    ) -> list[dict[str, Any]]:
        """POST /_matrix/federation/v1/get_missing_events/{roomId}: the `events` PDUs."""
        ...

    async def get_state_ids(
        self, destination: str, room_id: str, event_id: str
    ) -> tuple[list[str], list[str]]:
        """GET /_matrix/federation/v1/state_ids/{roomId}?event_id=: (pdu_ids, auth_chain_ids),
        the state before the event and its auth chain."""
        ...

    async def get_event(self, destination: str, event_id: str) -> dict[str, Any] | None:
        """GET /_matrix/federation/v1/event/{eventId}: the one PDU of the transaction."""
        ...

    async def get_event_auth(
        self, destination: str, room_id: str, event_id: str
    ) -> list[dict[str, Any]]:
        """GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}: the `auth_chain` PDUs."""
        ...


@dataclass(frozen=True, slots=True)
class FetchLimits:
    missing_events_limit: int = 20  # /get_missing_events `limit`
    missing_events_depth: int = 10  # min_depth = event depth - this
    max_state_events: int = 50_000  # events fetched one by one for one /state_ids answer
    concurrency: int = 10  # parallel /event requests
    request_timeout_s: float = 30.0


class MissingEventsFetcher:
    def __init__(
        self,
        storage: Storage,
        requester: FederationRequester,
        key_store: KeyStore,
        limits: FetchLimits = FetchLimits(),
    ) -> None:
        self._storage = storage
        self._requester = requester
        self._keys = key_store
        self._limits = limits

    async def _call(self, what: str, call: Awaitable[T]) -> T | None:
        try:
            return await asyncio.wait_for(call, self._limits.request_timeout_s)
        except Exception as e:  # unreachable, timeout, bad answer: we just don't get it
            log.info("federation fetch %s failed: %r", what, e)
            return None

    async def unknown(self, event_ids: Iterable[str]) -> list[str]:
        ids = list(dict.fromkeys(event_ids))
        known = await self._storage.db.read(lambda c: remote_table.select_known_event_ids(c, ids))
        return [i for i in ids if i not in known]

    async def verified(self, raws: Iterable[Any], rv: RoomVersion, room_id: str) -> list[Event]:
        """Parse and verify fetched PDUs; drop bad ones and ones from another room."""
        out: dict[str, Event] = {}
        for raw in raws:
            try:
                event = await verify_pdu(parse_pdu(raw, rv), self._keys)
            except PduDropped as e:
                log.info("dropping fetched PDU: %s", e.reason)
                continue
            if event.room_id != room_id:
                log.info("dropping fetched %s: it is in room %s", event.event_id, event.room_id)
                continue
            out[event.event_id] = event
        return list(out.values())

    async def ensure_auth_events(self, origin: str, event: Event, *, _level: int = 0) -> None:
        """Fetch and store (as outliers) the auth events of `event` we do not hold, with their
        auth chains. Missing ones stay missing when the origin does not give them."""
        missing = await self.unknown(auth_event_ids_needed(event))
        if not missing:
            return
        rv, room_id = event.room_version, event.room_id
        chain = await self._call(
            f"event_auth {event.event_id} from {origin}",
            self._requester.get_event_auth(origin, room_id, event.event_id),
        )
        if chain:
            await persist_outliers(self._storage, await self.verified(chain, rv, room_id))
        still = await self.unknown(missing)
        if still and _level < _MAX_NESTING:  # e.g. an answer without a v12 create event
            await self.fetch_events(origin, rv, room_id, still, _level=_level + 1)

    async def fetch_events(
        self, origin: str, rv: RoomVersion, room_id: str, event_ids: Sequence[str],
        *, _level: int = 0,
    ) -> None:
        """/event for each id (a few at a time), then store them as outliers; auth events they
        cite that are neither among them nor held are fetched first (/event_auth)."""
        gate = asyncio.Semaphore(self._limits.concurrency)

        async def one(eid: str) -> dict[str, Any] | None:
            async with gate:
                return await self._call(
                    f"event {eid} from {origin}", self._requester.get_event(origin, eid)
                )

        raws = await asyncio.gather(*(one(eid) for eid in event_ids))
        events = await self.verified([r for r in raws if r is not None], rv, room_id)
        fetched = {e.event_id for e in events}
        outside = {a for e in events for a in auth_event_ids_needed(e) if a not in fetched}
        lacking = set(await self.unknown(outside))
        if lacking and _level < _MAX_NESTING:
            for e in events:
                if lacking.intersection(auth_event_ids_needed(e)):
                    await self.ensure_auth_events(origin, e, _level=_level + 1)
        await persist_outliers(self._storage, events)

    async def missing_prev_events(
        self, origin: str, event: Event, earliest: Sequence[str]
    ) -> list[Event]:
        """/get_missing_events between our forward extremities (`earliest`) and `event`:
        the verified events we do not hold, oldest (lowest depth) first."""
        limits = self._limits
        raws = await self._call(
            f"get_missing_events for {event.event_id} from {origin}",
            self._requester.get_missing_events(
                origin, event.room_id, list(earliest), [event.event_id],
                limits.missing_events_limit,
                max(0, event.depth - limits.missing_events_depth),
            ),
        )
        if not raws:
            return []
        events = await self.verified(raws[: limits.missing_events_limit], event.room_version, event.room_id)
        new = set(await self.unknown(e.event_id for e in events)) - {event.event_id}
        return sorted((e for e in events if e.event_id in new), key=lambda e: (e.depth, e.event_id))

    async def state_at(self, origin: str, event: Event) -> dict[StateKey, str] | None:
        """The state before `event` as `origin` says it is (/state_ids at the event)."""
        return await self._state_ids(origin, event.room_version, event.room_id, event.event_id, None)

    async def state_after_prev(
        self, origin: str, event: Event, prev_id: str
    ) -> dict[StateKey, str] | None:
        """The state after `prev_id`, a prev event of `event` we lack: /state_ids at it (the
        state before it) plus the event itself, fetched, when it is state. Synapse asks this
        way, at each gap (_get_state_ids_after_missing_prev_event), and a server surely holds
        the state at an event it sent us (SyTest's servers answer only that)."""
        return await self._state_ids(origin, event.room_version, event.room_id, prev_id, prev_id)

    async def _state_ids(
        self, origin: str, rv: RoomVersion, room_id: str, at: str, plus: str | None
    ) -> dict[StateKey, str] | None:
        """/state_ids at `at`, its events fetched and stored as outliers, plus the event `plus`.
        Entries we could not get or that fail auth are left out. None when the origin does not
        answer, or `plus` cannot be had."""
        answer = await self._call(
            f"state_ids at {at} from {origin}", self._requester.get_state_ids(origin, room_id, at)
        )
        if answer is None:
            return None
        pdu_ids, chain_ids = answer
        pdu_ids = list(pdu_ids)[: self._limits.max_state_events]
        extra = [plus] if plus is not None else []
        wanted = list(dict.fromkeys([*chain_ids, *pdu_ids, *extra]))
        wanted = wanted[: self._limits.max_state_events]
        missing = await self.unknown(wanted)
        if missing:
            await self.fetch_events(origin, rv, room_id, missing)
        held = await self._storage.db.read(
            lambda c: events_table.select_events(c, [*pdu_ids, *extra])
        )
        if plus is not None and plus not in held:
            return None  # whether it is a state event decides the state: unknown
        state: dict[StateKey, str] = {}
        for eid in [*pdu_ids, *extra]:
            s = held.get(eid)
            if s is None or not s.event.is_state() or s.event.rejected_reason is not None:
                continue
            state[s.event.state_tuple] = eid
        return state
