"""The local event pipeline: build -> auth -> persist in one transaction -> notify.

Every event a local user causes (messages, state, membership, room creation) goes through
`RoomPipeline.send_events`. Event creation in one room is serialized by a per-room lock (held to
build and queue, not to commit: see Pipelining below), so the head an event is built on (the
forward extremities and current state, including the room's queued events) is still the room's
head when its write job runs; different rooms run concurrently, and all commits share fsyncs
through the storage writer's group commit.

The current state table always holds the state after the room's forward extremities, and
rooms.current_state_group names the same state as a state group, so a local event's "state before"
needs no state resolution. Federation (a later issue) resolves forks before calling into storage.

Speed: the pipeline keeps each room's head (version, current state ids, extremities, state group,
joined members) in memory, updated from its own commits, instead of reading 50+ rows per message.
Anything else that writes a room's head (federation ingest, out-of-band memberships) moves the
room's stamp (storage.room_changes) and the next send reloads. Auth events (create, power levels,
members) are kept in a small LRU by event id: events are immutable, so it never goes stale.

Pipelining (rooms/queued_writes.py): a send holds the room lock only while it builds its events
and queues their write job to the storage writer, not until the commit's fsync. The next send in
the room builds on the queued batch (prev_events, depth, state after it), so a burst in one room
shares one group commit. What keeps that correct:
- Each sender still gets its answer, and /sync and the federation sender their wake-up, only
  once the batch is durable (a task per batch awaits the commit, then notifies).
- Jobs run in queue order, which is build order, so stream positions follow the prev chain.
- A job built on a queued batch first checks that the batch's last event is in the database
  (in this transaction, or committed). If that batch failed (its savepoint rolled back, or its
  group's COMMIT failed), the job fails with M_UNKNOWN instead of storing an event whose prev
  event does not exist; the in-memory head is dropped and the next send, after every queued
  batch settled, reloads the database's head.
- A retried transaction id finds the queued batch (QueuedWrites.txns) and answers its event.
- Nothing builds on a queued STATE event: the persist hooks read members from the database
  before queuing, so the next send waits for that commit (messages, the bulk, pipeline freely).
- Everyone else who takes the room lock (room_lock(): federation ingest) waits, once holding
  it, until the room's queued batches have settled, so their database reads see them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.auth import AuthError, auth_types_for_event, check_auth
from dendrite_lite.events.builder import BuildError, EventRef, build_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.format import FormatError, validate_pdu
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.rooms.queued_writes import QueuedWrite, QueuedWrites, RoomLock, TxnKey, retrieve
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import room_changes
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.sync.notifier import Notifier

if TYPE_CHECKING:
    from dendrite_lite.rooms.notifications import PersistHook

__all__ = ["EventSpec", "RoomPipeline", "PersistedEvent", "CommitHook"]

log = logging.getLogger(__name__)

CommitHook = Callable[[str, Sequence[Event]], None]
# A persist hook's write, run inside the batch's transaction.
_InTxn = Callable[[aiosqlite.Connection, Sequence[tuple[Event, int]]], Awaitable[None]]

# Auth events kept by id (a room needs its create, power levels, join rules and the members who
# send): enough for thousands of active senders, a few MB at most.
AUTH_EVENT_CACHE_SIZE = 8192
# Room heads kept (least recently sent to dropped first): a head holds one id per state entry,
# about 1.5 MB for a 10,000-member room.
HEAD_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What a local user wants to send; the pipeline fills in everything else."""

    sender: str
    event_type: str
    content: Mapping[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    txn: tuple[str, str, str] | None = None  # (user_id, device_id, txn_id) for idempotency
    # An application service's `ts` (timestamp massaging): origin_server_ts instead of now.
    origin_server_ts: int | None = None


@dataclass(frozen=True, slots=True)
class PersistedEvent:
    event: Event
    stream_ordering: int


@dataclass(frozen=True, slots=True)
class _KnownHead:
    """A room's head as of the room stamp `stamp` (storage.room_changes); never mutated.

    With `pending` set, the head includes that queued, uncommitted batch: its state group and
    stamp are not known yet (the batch's write job records them when it runs)."""

    version: RoomVersion
    state: Mapping[StateKey, str]
    extremities: Sequence[Event | EventRef]
    state_group: int | None
    joined: frozenset[str]
    stamp: int
    pending: QueuedWrite | None = None


@dataclass(slots=True)
class _RoomHead:
    """The room as the next event sees it, updated in memory as a batch is built."""

    version: RoomVersion
    state: dict[StateKey, str]  # (type, state_key) -> event id: the current state
    extremities: list[Event | EventRef]
    state_group: int | None
    events: dict[str, Event] = field(default_factory=dict)  # auth events loaded so far
    joined: set[str] = field(default_factory=set)
    # The state dict may be the cached head's (shared, read-only) until a state event changes it.
    owns_state: bool = True

    def state_events(self) -> Mapping[StateKey, Event]:
        return _StateView(self.state, self.events)

    @classmethod
    def from_known(cls, known: _KnownHead) -> _RoomHead:
        return cls(
            known.version, known.state,  # type: ignore[arg-type]  # copied before any change
            list(known.extremities), known.state_group, {}, set(known.joined), owns_state=False,
        )

    def known(self, stamp: int, pending: QueuedWrite | None = None) -> _KnownHead:
        return _KnownHead(
            self.version, self.state, tuple(self.extremities), self.state_group,
            frozenset(self.joined), stamp, pending,
        )


class _StateView(Mapping[StateKey, Event]):
    """The current state as Events, without materialising 10,000 member events per message:
    only the entries auth selection asks for are ever looked up (and were loaded beforehand)."""

    __slots__ = ("_ids", "_events")

    def __init__(self, ids: Mapping[StateKey, str], events: Mapping[str, Event]) -> None:
        self._ids = ids
        self._events = events

    def __getitem__(self, key: StateKey) -> Event:
        return self._events[self._ids[key]]

    def __iter__(self) -> Iterator[StateKey]:
        return (k for k, i in self._ids.items() if i in self._events)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class RoomPipeline:
    def __init__(
        self,
        storage: Storage,
        *,
        server_name: str,
        key: ServerKey,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        persist_hooks: Sequence[PersistHook] = (),
        commit_hooks: Sequence[CommitHook] = (),
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._key = key
        self._notifier = notifier
        # Called with the built batch before it is persisted; what they return runs inside the
        # batch's write transaction (push actions for unread counts: rooms/notifications.py).
        self._persist_hooks = list(persist_hooks)
        # Called with (room_id, events) once a batch is durable (wakes the federation sender).
        self._commit_hooks = list(commit_hooks)
        self._clock = clock
        self._locks: weakref.WeakValueDictionary[str, RoomLock] = weakref.WeakValueDictionary()
        self._heads: OrderedDict[str, _KnownHead] = OrderedDict()
        self._auth_events: OrderedDict[str, Event] = OrderedDict()
        self._queued = QueuedWrites()

    def _lock(self, room_id: str) -> RoomLock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = RoomLock(lambda: self._queued.drain(room_id))
            self._locks[room_id] = lock
        return lock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def room_lock(self, room_id: str) -> asyncio.Lock:
        """The room's lock, for services that change the room outside this pipeline (events
        received over federation: federation/ingest.py) and must not interleave with it.
        Acquiring it also waits until the room's queued local events have committed (or
        failed), so the holder reads the room's real head from the database."""
        return self._lock(room_id)

    # --- public ------------------------------------------------------------------------------
    async def create_room(
        self,
        room_version: RoomVersion,
        creator: str,
        create_content: Mapping[str, Any],
        following: Callable[[str], Sequence[EventSpec]],
        *,
        room_id: str | None = None,
        is_public: bool = False,
        dry_run: bool = False,
    ) -> tuple[str, list[PersistedEvent]]:
        """Create a room: the create event plus `following(room_id)` in ONE transaction.

        room_id is required before v12 (the caller picks it) and derived from the create event
        from v12 on, which is why the rest of the events are produced by a callback.
        dry_run builds and auth-checks everything, raising as a real run would, and stores
        nothing: for a caller that must change another room first, and only if this will work
        (a room upgrade's tombstone names the new room, whose create event names the tombstone).
        """
        create = self._build(
            room_version, EventSpec(creator, "m.room.create", create_content, ""), {}, [], room_id
        )
        room_id = create.room_id
        head = _RoomHead(room_version, {}, [], None, {})
        self._check_and_advance(head, create)
        # The room is new: nothing queued to build on. Held until the commit, as a room must
        # exist before anyone sends to it.
        async with self._lock(room_id).building():
            built = [create]
            for spec in following(room_id):
                event = self._build(room_version, spec, head.state_events(), head.extremities)
                self._check_and_advance(head, event)
                built.append(event)
            if dry_run:
                return room_id, []
            # The same hooks as any batch: an invite in /createRoom (how Element starts a direct
            # chat) must notify the invitee and reach a bridge as one sent with /invite does.
            in_txn = [w for hook in self._persist_hooks if (w := await hook(room_id, built)) is not None]

            async def persist(conn: aiosqlite.Connection) -> tuple[list[PersistedEvent], int]:
                inserted = await rooms_table.insert_room(
                    conn,
                    room_id=room_id,
                    room_version=room_version.identifier,
                    creator=creator,
                    created_ts=self._now_ms(),
                    is_public=is_public,
                )
                if not inserted:
                    raise MatrixError(Errcode.ROOM_IN_USE, f"room {room_id} already exists")
                out, head.state_group = await self._persist(
                    conn, room_id, None, built, [None] * len(built)
                )
                for write_hook in in_txn:
                    await write_hook(conn, [(p.event, p.stream_ordering) for p in out])
                return out, room_changes.stamp(room_id)

            persisted, stamp = await self._storage.db.write(persist)
            self._keep_head(room_id, head.known(stamp))
            self._remember_auth_events(head.events.values())
        await self._after_commit(room_id, persisted, head.joined)
        return room_id, persisted

    async def send_events(self, room_id: str, specs: Sequence[EventSpec]) -> list[PersistedEvent]:
        """Build, auth-check and persist events in one room, in order, in one transaction.

        Returns once they are durable. An event whose txn was seen before (committed or still
        queued) is not sent again: the earlier event is returned.
        Raises MatrixError: M_NOT_FOUND (unknown room), M_FORBIDDEN (auth rules), M_BAD_JSON /
        M_TOO_LARGE (event format), M_UNKNOWN (a queued event it was built on failed to persist).
        """
        mine: asyncio.Future[list[PersistedEvent]] | None = None
        # None: built here; a PersistedEvent: an earlier txn, committed; (its batch's outcome,
        # index): an earlier txn, queued.
        results: list[PersistedEvent | tuple[asyncio.Future[list[PersistedEvent]], int] | None] = []
        async with self._lock(room_id).building():
            known = await self._head_for_build(room_id)
            head = _RoomHead.from_known(known)
            built: list[Event] = []
            txns: list[TxnKey | None] = []
            for spec in specs:
                earlier = await self._earlier_for_txn(spec.txn)
                if earlier is not None:
                    results.append(earlier)
                    continue
                await self._load_auth_events(head, spec)
                event = self._build(head.version, spec, head.state_events(), head.extremities)
                self._check_and_advance(head, event)
                built.append(event)
                txns.append(spec.txn)
                results.append(None)
            if built:
                in_txn = [
                    w for hook in self._persist_hooks
                    if (w := await hook(room_id, built)) is not None
                ]
                write = self._queue(room_id, known, head, built, txns, in_txn)
                mine = write.outcome()
                # The lock goes only once the job is on the writer's queue, so the writer runs
                # the room's jobs in the order they were built.
                while not write.on_queue:
                    await asyncio.sleep(0)
        persisted: list[PersistedEvent] = await mine if mine is not None else []
        fresh = iter(persisted)
        out: list[PersistedEvent] = []
        for r in results:
            if r is None:
                out.append(next(fresh))
            elif isinstance(r, PersistedEvent):
                out.append(r)
            else:
                outcome, index = r
                out.append((await outcome)[index])
        return out

    async def send(self, room_id: str, spec: EventSpec) -> PersistedEvent:
        return (await self.send_events(room_id, [spec]))[0]

    # --- queued writes (the caller holds the room lock) ---------------------------------------
    async def _head_for_build(self, room_id: str) -> _KnownHead:
        """The head to build on: the one including the room's last queued batch, unless that
        batch (or one it was built on) is a state event or failed; then, once everything queued
        has settled, the head of the last commit, or the database's."""
        while (tail := self._queued.tails.get(room_id)) is not None:
            known = self._heads.get(room_id)
            if known is not None and known.pending is tail and not tail.blocks_building():
                return known
            await tail.wait_settled()
        known = self._heads.get(room_id)
        if known is None or known.pending is not None or known.stamp != room_changes.stamp(room_id):
            known = await self._load_head(room_id)
        return known

    def _queue(
        self,
        room_id: str,
        known: _KnownHead,
        head: _RoomHead,
        built: Sequence[Event],
        txns: Sequence[TxnKey | None],
        in_txn: Sequence[_InTxn],
    ) -> QueuedWrite:
        """Hand the batch to the writer (through its commit task) and make the room's head the
        head after it, for the next batch to build on."""
        prev = known.pending
        write = QueuedWrite(room_id, built, prev, any(e.is_state() for e in built))

        async def persist(conn: aiosqlite.Connection) -> list[PersistedEvent]:
            # Runs on the writer, after the job of `prev` (queue order).
            if prev is None:
                group, clean = known.state_group, room_changes.stamp(room_id) == known.stamp
            else:
                if not await _stored(conn, prev.events[-1].event_id):
                    # prev rolled back (or its group's COMMIT failed): our prev_events would
                    # name an event that does not exist.
                    raise MatrixError(
                        Errcode.UNKNOWN, "an earlier event in this room failed to persist; retry"
                    )
                group = prev.group_after
                clean = prev.clean and room_changes.stamp(room_id) == prev.stamp_after
            out, group = await self._persist(conn, room_id, group, built, txns)
            for write_hook in in_txn:
                await write_hook(conn, [(p.event, p.stream_ordering) for p in out])
            # A stamp other than the one our writes left means someone else wrote the room
            # between the head we built on and here: that head must go (see _commit).
            write.group_after, write.clean = group, clean
            write.stamp_after = room_changes.stamp(room_id)
            return out

        write.head = head.known(-1, pending=write)
        write.task = asyncio.create_task(
            write.answering(self._commit(write, persist, txns, write.head.joined))
        )
        write.task.add_done_callback(retrieve)
        self._queued.add(write, txns)
        self._keep_head(room_id, write.head)
        # Whoever builds on this batch checks auth against its state events: keep them at hand.
        self._remember_auth_events(e for e in built if e.is_state())
        return write

    async def _commit(
        self,
        write: QueuedWrite,
        persist: Callable[[aiosqlite.Connection], Awaitable[list[PersistedEvent]]],
        txns: Sequence[TxnKey | None],
        joined: Iterable[str],
    ) -> list[PersistedEvent]:
        """Queue the batch's job; once durable, settle the room's head and notify. Runs as a
        task of its own (QueuedWrite.answering), so a sender that goes away (or a retried txn)
        does not change what happens."""
        room_id = write.room_id
        try:
            write.on_queue = True  # db.write queues the job before it first waits
            persisted = await self._storage.db.write(persist)
        except BaseException as e:
            # Everything built on this batch fails its own job; the next send waits for them
            # and reloads the database's head.
            log.info("room %s: queued batch of %d events failed: %r", room_id, len(write.events), e)
            self._queued.settle(write, txns, failed=True)
            self._heads.pop(room_id, None)
            raise
        is_tail = self._queued.tails.get(room_id) is write
        self._queued.settle(write, txns, failed=False)
        if not write.clean:
            # Someone else wrote the room meanwhile: our head (and its members) may be behind;
            # the next send reloads (after whatever is still queued), this one notifies from
            # the database.
            self._heads.pop(room_id, None)
            joined = await self._storage.db.read(
                lambda c: state_table.select_members(c, room_id, "join")
            )
        elif is_tail and (known := self._heads.get(room_id)) is write.head and known is not None:
            # The last batch queued: its head is now the committed one, with its state group.
            self._keep_head(room_id, replace(
                known, pending=None, state_group=write.group_after, stamp=write.stamp_after
            ))
        await self._after_commit(room_id, persisted, joined)
        return persisted

    # --- building and checking ------------------------------------------------------------------
    def _build(
        self,
        rv: RoomVersion,
        spec: EventSpec,
        state: Mapping[StateKey, Event],
        extremities: Sequence[Event | EventRef],
        room_id: str | None = None,
    ) -> Event:
        try:
            event = build_event(
                room_version=rv,
                server_name=self._server_name,
                key=self._key,
                sender=spec.sender,
                event_type=spec.event_type,
                content=spec.content,
                origin_server_ts=(
                    spec.origin_server_ts if spec.origin_server_ts is not None else self._now_ms()
                ),
                state=state,
                prev_events=extremities,
                state_key=spec.state_key,
                redacts=spec.redacts,
                room_id=room_id,
            )
            validate_pdu(dict(event.pdu), rv)
        except FormatError as e:
            code = Errcode.TOO_LARGE if e.too_large else Errcode.BAD_JSON
            raise MatrixError(code, f"invalid event: {e.reason}") from None
        except BuildError as e:
            raise MatrixError(Errcode.BAD_JSON, f"cannot build event: {e}") from None
        return event

    @staticmethod
    def _check_and_advance(head: _RoomHead, event: Event) -> None:
        """Auth-check against the current state, then make the event part of the head."""
        try:
            check_auth(event, head.state_events())
        except AuthError as e:
            raise MatrixError(Errcode.FORBIDDEN, e.reason, rule=e.rule) from None
        head.events[event.event_id] = event
        if event.is_state():
            if not head.owns_state:
                head.state, head.owns_state = dict(head.state), True
            head.state[event.state_tuple] = event.event_id
            if event.type == "m.room.member" and event.state_key:
                if event.membership == "join":
                    head.joined.add(event.state_key)
                else:
                    head.joined.discard(event.state_key)
        head.extremities = [event]

    # --- loading ---------------------------------------------------------------------------------
    async def _load_head(self, room_id: str) -> _KnownHead:
        """Read the head through the WRITER, which sees every earlier write (a reader could miss
        one whose commit is still under way, and we would cache a stale head under a new
        stamp); the stamp read in the same job matches exactly what was read."""

        async def load(conn: aiosqlite.Connection) -> _KnownHead | None:
            room = await rooms_table.select_room(conn, room_id)
            if room is None:
                return None
            version = get_room_version(room.room_version)
            state = await state_table.select_current_state(conn, room_id)
            joined = await state_table.select_members(conn, room_id, "join")
            rows = await events_table.select_forward_extremities(conn, room_id)
            extremities: list[Event | EventRef] = [EventRef(e, d) for e, d in rows]
            # v1/v2 prev_events cite reference hashes, which EventRef alone does not carry.
            if version.event_id_in_event:
                stored = await events_table.select_events(conn, [e for e, _ in rows])
                extremities = [stored[e].event for e, _ in rows]
            return _KnownHead(
                version, state, tuple(extremities), room.current_state_group, frozenset(joined),
                room_changes.stamp(room_id),
            )

        known = await self._storage.db.write(load)
        if known is None:
            raise MatrixError(Errcode.NOT_FOUND, f"unknown room {room_id}")
        self._keep_head(room_id, known)
        return known

    def _keep_head(self, room_id: str, known: _KnownHead) -> None:
        self._heads[room_id] = known
        self._heads.move_to_end(room_id)
        while len(self._heads) > HEAD_CACHE_SIZE:
            self._heads.popitem(last=False)

    async def _load_auth_events(self, head: _RoomHead, spec: EventSpec) -> None:
        wanted = auth_types_for_event(
            head.version, spec.event_type, spec.state_key, spec.sender, spec.content
        )
        wanted.append(("m.room.create", ""))
        missing: list[str] = []
        for key in wanted:
            event_id = head.state.get(key)
            if event_id is None or event_id in head.events:
                continue
            cached = self._auth_events.get(event_id)
            if cached is not None:
                self._auth_events.move_to_end(event_id)
                head.events[event_id] = cached
            else:
                missing.append(event_id)
        if missing:
            stored = await self._storage.db.read(lambda c: events_table.select_events(c, missing))
            head.events.update({i: s.event for i, s in stored.items()})
            self._remember_auth_events(s.event for s in stored.values())

    def _remember_auth_events(self, events: Iterable[Event]) -> None:
        cache = self._auth_events
        for event in events:
            cache[event.event_id] = event
            cache.move_to_end(event.event_id)
        while len(cache) > AUTH_EVENT_CACHE_SIZE:
            cache.popitem(last=False)

    async def _earlier_for_txn(
        self, txn: TxnKey | None
    ) -> PersistedEvent | tuple[asyncio.Future[list[PersistedEvent]], int] | None:
        """The event a txn id already produced: queued (not committed yet) or stored."""
        if txn is None:
            return None
        queued = self._queued.txns.get(txn)
        if queued is not None:
            write, index = queued
            return write.outcome(), index
        stored = await self._storage.db.read(lambda c: events_table.select_event_by_txn(c, *txn))
        return PersistedEvent(stored.event, stored.stream_ordering) if stored is not None else None

    # --- persisting ------------------------------------------------------------------------------
    async def _persist(
        self,
        conn: aiosqlite.Connection,
        room_id: str,
        group: int | None,
        events: Sequence[Event],
        txns: Sequence[tuple[str, str, str] | None],
    ) -> tuple[list[PersistedEvent], int | None]:
        """Write the events; returns them with their positions, and the room's new state group."""
        out: list[PersistedEvent] = []
        delta: dict[StateKey, tuple[str, str | None]] = {}
        for event, txn in zip(events, txns, strict=True):
            if event.is_state():
                group = await state_table.insert_state_group(
                    conn,
                    room_id,
                    prev_group=group,
                    delta={event.state_tuple: event.event_id},
                    full_state=None if group is not None else {event.state_tuple: event.event_id},
                )
                membership = event.membership if event.type == "m.room.member" else None
                delta[event.state_tuple] = (event.event_id, membership)
            position = await events_table.insert_event(conn, event, state_group=group, txn=txn)
            await events_table.replace_forward_extremities(
                conn, room_id, remove=event.prev_event_ids, add=[event.event_id]
            )
            if event.type == "m.room.redaction" and event.redacts:
                await events_table.insert_redaction(conn, event.event_id, event.redacts)
            out.append(PersistedEvent(event, position))
        await state_table.update_current_state(conn, room_id, delta)
        await rooms_table.update_current_state_group(conn, room_id, group)
        return out, group

    async def _after_commit(
        self, room_id: str, persisted: Iterable[PersistedEvent], joined: Iterable[str]
    ) -> None:
        """Wake the /syncs of the members after the batch (and of every membership's target)."""
        members = set(joined)
        for p in persisted:
            if p.event.type == "m.room.member" and p.event.state_key:
                members.add(p.event.state_key)
        self._notifier.notify(members)
        events = [p.event for p in persisted]
        for hook in self._commit_hooks:
            hook(room_id, events)


async def _stored(conn: aiosqlite.Connection, event_id: str) -> bool:
    # The state group alone is the cheap read (no event JSON); every event this pipeline stores
    # has one, so the full row is read only in the odd case.
    if await events_table.select_state_group_of(conn, event_id) is not None:
        return True
    return await events_table.select_event(conn, event_id) is not None
