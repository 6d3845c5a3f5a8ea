"""The federation sender: our events and EDUs to every other server that should see them.

- PDUs: `prepare` is a RoomPipeline persist hook. For each batch of local events it writes one
  outbox row per (destination, event) INSIDE the events' own transaction, so an event a client
  got a 200 for is queued for every server in the room even if the process dies right after.
  `committed` (a pipeline commit hook) then wakes those destinations' queues.
- EDUs: `send_edu(destinations, type, content)`. m.receipt is persisted like a PDU; typing and
  presence are best-effort and wait in memory only.
- One `DestinationQueue` per destination (federation/outbox.py) sends one transaction at a time
  and backs off on failure; `mark_alive(server)` (an inbound request from it) ends the backoff.
- `start()` wakes every destination that still has rows from a previous run; `stop()` lets
  in-flight requests finish for a moment, then cancels them (their rows stay queued).

Who receives an event: the servers with a joined member in the room before or after the batch
(before: a kicked or banned server still hears of it; after: covers the batch's own changes),
plus the target's server of an invite, and of a leave that rescinds an invite.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.federation.destinations import (
    BackoffPolicy,
    DestinationHealth,
    destination_health,
    list_destinations,
)
from dendrite_lite.federation.outbox import DestinationQueue, Edu, TransactionTransport, TxnIds
from dendrite_lite.storage import Storage
from dendrite_lite.storage import destinations as destinations_table
from dendrite_lite.storage import outbox as outbox_table

__all__ = ["FederationSender", "ClientTransport", "PERSISTED_EDU_TYPES"]

log = logging.getLogger(__name__)

# EDUs that must survive a restart. Typing and presence are superseded within seconds.
PERSISTED_EDU_TYPES = frozenset({"m.receipt"})
# At shutdown, requests in flight get this long before they are cancelled.
STOP_GRACE_S = 2.0

InTxn = Callable[[aiosqlite.Connection, Sequence[tuple[Event, int]]], Any]


class ClientTransport:
    """TransactionTransport over the signed federation client."""

    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def send_transaction(
        self, destination: str, txn_id: str, body: Mapping[str, Any]
    ) -> Any:
        path = f"/_matrix/federation/v1/send/{quote(txn_id, safe='')}"
        return await self._client.put_json(destination, path, body)


def server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class FederationSender:
    def __init__(
        self,
        storage: Storage,
        transport: TransactionTransport,
        *,
        server_name: str,
        policy: BackoffPolicy = BackoffPolicy(),
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._storage = storage
        self._transport = transport
        self.server_name = server_name
        self._policy = policy
        self._clock = clock
        self._rng = rng
        self._txn_ids = TxnIds(int(clock() * 1000))
        self._queues: dict[str, DestinationQueue] = {}
        # event id -> destinations whose rows were written in its (not yet committed) transaction.
        # A batch whose transaction rolls back leaves its entries (rare, and a few bytes each).
        self._to_wake: dict[str, set[str]] = {}
        self._started = False
        self._stopped = False
        # Hears how each transaction attempt ended: (destination, "sent" | "retry" | "rejected").
        self.on_transaction: Callable[[str, str], None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume: a queue for every destination with queued rows or a remembered backoff."""

        async def load(conn: aiosqlite.Connection) -> tuple[list[str], list[Any]]:
            pending = await outbox_table.select_pending_destinations(conn)
            rows = await destinations_table.select_destinations(conn)
            return pending, [r for r in rows if r.retry_interval_ms or r.next_retry_ts]

        pending, backing_off = await self._storage.db.read(load)
        for row in backing_off:
            self._queue(row.destination, row.retry_interval_ms, row.next_retry_ts)
        for name in pending:
            self._queue(name)
        self._started = True
        for queue in self._queues.values():
            queue.start()
        if pending:
            log.info("federation: resuming delivery to %d destination(s)", len(pending))

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        self._stopped = True
        queues = list(self._queues.values())
        for queue in queues:
            queue.stop()
        await asyncio.gather(*(q.join(grace_s) for q in queues))

    def _queue(
        self, destination: str, retry_interval_ms: int = 0, next_retry_ts: int = 0
    ) -> DestinationQueue:
        queue = self._queues.get(destination)
        if queue is None:
            queue = DestinationQueue(
                destination,
                origin=self.server_name,
                storage=self._storage,
                transport=self._transport,
                txn_ids=self._txn_ids,
                policy=self._policy,
                clock=self._clock,
                rng=self._rng,
                retry_interval_ms=retry_interval_ms,
                next_retry_ts=next_retry_ts,
                on_outcome=self._transaction_done,
            )
            self._queues[destination] = queue
            if self._started and not self._stopped:
                queue.start()
        return queue

    def _transaction_done(self, destination: str, outcome: str) -> None:
        if self.on_transaction is not None:
            self.on_transaction(destination, outcome)

    def _wake(self, destinations: Iterable[str]) -> None:
        for d in destinations:
            self._queue(d).wake()

    def wake(self, destinations: Iterable[str]) -> None:
        """Outbox rows for these destinations were committed by another service's write (EDUs
        queued in the same transaction as the change they describe): send them now."""
        self._wake(d for d in destinations if d != self.server_name)

    # --- PDUs: pipeline hooks ----------------------------------------------------------------
    async def prepare(
        self, room_id: str, events: Sequence[Event], *, skip: frozenset[str] = frozenset()
    ) -> InTxn | None:
        """Persist hook: returns the write that queues `events` inside their own transaction,
        for every server that must have them but those in `skip`."""
        local = [e for e in events if e.prev_event_ids and self._ours(e)]
        return await self._queue_in_txn(room_id, local, skip=skip)

    def _ours(self, event: Event) -> bool:
        """Sent by one of our users, or built here on another server's user's behalf: an invite
        from a third-party invite, which the invitee's server sends for the inviter
        (rooms/third_party_invites.py; server-server-api.md §Third-party invites)."""
        if server_of(event.sender) == self.server_name:
            return True
        content = event.content
        return (
            event.type == "m.room.member" and content.get("membership") == "invite"
            and "third_party_invite" in content
            and self.server_name in (event.pdu.get("signatures") or {})
        )

    def on_behalf_of(self, origin: str) -> Callable[[str, Sequence[Event]], Awaitable[InTxn | None]]:
        """A persist hook for the membership events `origin` sent through our send_join,
        send_leave or send_knock: they go to every other server in the room, as from us (the
        joining server does not know the room's servers yet; Synapse does the same). `origin`
        itself has its event already."""

        async def hook(room_id: str, events: Sequence[Event]) -> InTxn | None:
            theirs = [e for e in events if server_of(e.sender) == origin]
            return await self._queue_in_txn(room_id, theirs, skip=frozenset({origin}))

        return hook

    async def _queue_in_txn(
        self, room_id: str, events: Sequence[Event], *, skip: frozenset[str]
    ) -> InTxn | None:
        if not events:
            return None
        targets = [e.state_key for e in events if e.type == "m.room.member" and e.state_key]

        async def load(conn: aiosqlite.Connection) -> tuple[set[str], dict[str, str | None]]:
            servers = await outbox_table.select_joined_servers(conn, room_id)
            return servers, await outbox_table.select_memberships(conn, room_id, targets)

        before, memberships = await self._storage.db.read(load)
        wanted = {e.event_id for e in events}

        async def write(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            room = before | await outbox_table.select_joined_servers(conn, room_id)
            prior = dict(memberships)
            rows: list[tuple[str, str]] = []
            for event, _ in persisted:
                if event.event_id not in wanted:
                    continue
                destinations = set(room) | _membership_targets(event, prior)
                destinations.discard(self.server_name)
                destinations.difference_update(skip)
                rows += [(d, event.event_id) for d in sorted(destinations)]
                if destinations:
                    self._to_wake[event.event_id] = destinations
            if rows:
                await outbox_table.insert_outbox_pdus(conn, rows, self._now_ms())

        return write

    def committed(self, room_id: str, events: Sequence[Event]) -> None:
        """Commit hook: the batch is durable, its destinations may read their rows now."""
        for event in events:
            destinations = self._to_wake.pop(event.event_id, None)
            if destinations:
                self._wake(destinations)

    # --- EDUs ------------------------------------------------------------------------------------
    async def send_edu(
        self, destinations: Iterable[str], edu_type: str, content: Mapping[str, Any]
    ) -> None:
        """Queue one EDU for each destination (our own name is skipped).

        m.receipt is written to the outbox (returns once durable); other types wait in memory.
        """
        targets = sorted(set(destinations) - {self.server_name, ""})
        if not targets:
            return
        if edu_type in PERSISTED_EDU_TYPES:
            now = self._now_ms()
            await self._storage.db.write(
                lambda conn: outbox_table.insert_outbox_edus(conn, targets, edu_type, content, now)
            )
            self._wake(targets)
            return
        edu = Edu(edu_type, content)
        for d in targets:
            self._queue(d).add_edu(edu)

    async def joined_servers(self, room_id: str) -> set[str]:
        """The other servers with a joined member in the room: where a room's EDUs go."""
        servers = await self._storage.db.read(
            lambda conn: outbox_table.select_joined_servers(conn, room_id)
        )
        servers.discard(self.server_name)
        return servers

    async def servers_sharing_rooms(self, user_id: str) -> set[str]:
        """The other servers sharing a room with `user_id`: where its presence goes."""
        servers = await self._storage.db.read(
            lambda conn: outbox_table.select_servers_sharing_rooms(conn, user_id)
        )
        servers.discard(self.server_name)
        return servers

    # --- liveness and health ---------------------------------------------------------------------
    async def mark_alive(self, server_name: str) -> None:
        """`server_name` just sent us an authenticated request: end its backoff, send now."""
        queue = self._queues.get(server_name)
        if queue is None or not queue.mark_alive():
            return
        log.info("federation: %s is back; resuming delivery", server_name)
        await self._storage.db.write(
            lambda conn: destinations_table.update_destination_alive(conn, server_name)
        )

    async def reset_backoff(self, server_name: str) -> None:
        """A server admin asked to retry `server_name` now (the admin API's reset_connection):
        forget its backoff, in memory and stored, and send what is queued for it."""
        queue = self._queues.get(server_name)
        if queue is not None:
            queue.mark_alive()
        await self._storage.db.write(
            lambda conn: destinations_table.update_destination_alive(conn, server_name)
        )

    async def list_destinations(self) -> list[DestinationHealth]:
        return await list_destinations(self._storage)

    async def destination_health(self, name: str) -> DestinationHealth | None:
        return await destination_health(self._storage, name)

    async def queue_lengths(self) -> dict[str, int]:
        """What waits per destination: outbox rows plus in-memory EDUs (0 for a destination
        with a live queue and nothing waiting)."""
        lengths = await self._storage.db.read(outbox_table.select_pending_counts)
        for name, queue in self._queues.items():
            lengths[name] = lengths.get(name, 0) + queue.pending_memory_edus
        return lengths

    def queue(self, destination: str) -> DestinationQueue | None:
        """The live queue of a destination, if any (tests, TUI: in-memory counters)."""
        return self._queues.get(destination)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _membership_targets(event: Event, prior: dict[str, str | None]) -> set[str]:
    """Servers that must hear of a membership event though none of their users is joined:
    an invite's target, and the target of a leave that takes back an invite."""
    if event.type != "m.room.member" or not event.state_key:
        return set()
    target = event.state_key
    before = prior.get(target)
    prior[target] = event.membership  # later events of the same batch see this one
    if event.membership == "invite" or (event.membership == "leave" and before == "invite"):
        return {server_of(target)}
    return set()
