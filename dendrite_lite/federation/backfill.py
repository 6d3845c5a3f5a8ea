"""Backfill (server-server-api.md §Backfilling and retrieving missing events): when a client
paginates past the oldest event we hold of a room joined over federation, ask a server in the
room for the events before it (/backfill) and store them before everything else in the stream
(negative stream orderings: they never wake a /sync and sort before every live event).

Each event gets the checks of any received PDU (format, signatures, hash, auth against its auth
events); one whose auth events we do not hold is left out.
NOTSPEC-lite: a backfilled event gets the state group of the oldest event we held before it
(the state at our join, usually) instead of the state the server computes for it; history
visibility then treats old events as it treats the start of our timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiosqlite

from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.federation.checks import (
    PduDropped,
    auth_event_ids_needed,
    check_against_auth_events,
    parse_pdu,
    verify_pdu,
)
from dendrite_lite.federation.requester import ClientRequester
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import rooms as rooms_table

__all__ = ["Backfiller"]

log = logging.getLogger(__name__)

# Oldest timeline events looked at for prev events we lack.
_EDGE = 20


class Backfiller:
    def __init__(
        self, storage: Storage, requester: ClientRequester, key_store: KeyStore, *, server_name: str
    ) -> None:
        self._storage = storage
        self._requester = requester
        self._keys = key_store
        self._server_name = server_name

    async def backfill(self, room_id: str, limit: int) -> int:
        """Fetch up to `limit` events before the oldest we hold; returns how many were stored."""
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
            events: list[Event] = []
            for raw in raws[:limit]:
                try:
                    event = await verify_pdu(parse_pdu(raw, rv), self._keys)
                except PduDropped as e:
                    log.info("backfilled PDU dropped: %s", e.reason)
                    continue
                if event.room_id == room_id:
                    events.append(event)
            stored = await self._store(events, oldest[0].state_group)
            if stored:
                return stored
        return 0

    async def _store(self, events: Sequence[Event], group: int | None) -> int:
        if not events:
            return 0
        wanted = {a for e in events for a in auth_event_ids_needed(e)} | {e.event_id for e in events}
        held = await self._storage.db.read(lambda c: events_table.select_events(c, wanted))
        known = {i: s.event for i, s in held.items()}
        # Held only for its content (e.g. room state from our join): it joins the timeline now.
        outliers = {i for i, s in held.items() if _plain_outlier(s)}
        fresh: list[Event] = []
        # Oldest first, so an event's auth events among the batch are checked before it.
        for event in sorted(events, key=lambda e: (e.depth, e.event_id)):
            if event.event_id in outliers:
                fresh.append(known[event.event_id])
                continue
            if event.event_id in known:
                continue
            if any(a not in known for a in auth_event_ids_needed(event)):
                log.info("backfilled %s left out: auth events unknown", event.event_id)
                continue
            if check_against_auth_events(event, known) is not None:
                log.info("backfilled %s rejected by the auth rules", event.event_id)
                continue
            known[event.event_id] = event
            fresh.append(event)

        async def write(conn: aiosqlite.Connection) -> int:
            position = min(await events_table.select_min_stream_ordering(conn), 0)
            count = 0
            for event in reversed(fresh):  # newest first: each older one sorts before it
                held = await events_table.select_event(conn, event.event_id)
                if held is not None and not _plain_outlier(held):
                    continue
                if held is not None:
                    await remote_table.delete_outlier(conn, event.event_id)
                position -= 1
                await events_table.insert_event(conn, event, stream_ordering=position, state_group=group)
                count += 1
            return count

        return await self._storage.db.write(write) if fresh else 0


def _plain_outlier(s: events_table.StoredEvent) -> bool:
    return s.outlier and s.state_group is None and s.event.rejected_reason is None


async def _edge(
    conn: aiosqlite.Connection, room_id: str
) -> tuple[list[events_table.StoredEvent], set[str], set[str], str | None]:
    """The room's oldest timeline events, the prev events of theirs we lack, the servers in
    the room and its version."""
    room = await rooms_table.select_room(conn, room_id)
    oldest = await events_table.select_room_events(conn, room_id, limit=_EDGE, backwards=False)
    prevs = {p for s in oldest for p in s.event.prev_event_ids}
    known = await remote_table.select_known_event_ids(conn, prevs)
    servers = await outbox_table.select_joined_servers(conn, room_id)
    return oldest, prevs - known, servers, room.room_version if room is not None else None
