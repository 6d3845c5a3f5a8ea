"""Read receipts (receipts.md): m.read and m.read.private, unthreaded or threaded.

Rules applied here:
- only joined members send receipts (403), and only for events of that room (404);
- a `thread_id` must be a non-empty string related to the event (400 M_INVALID_PARAM): "main"
  for an event outside any thread, otherwise the thread root the event belongs to (the root
  itself, an event with an m.thread relation to it, or an event related to one of those,
  following at most 3 relations as the spec recommends);
- receipts only move forward: one for an event earlier in the room than the user's current
  receipt of the same kind is accepted and ignored (as Synapse does), so a slow device cannot
  rewind the others' read position;
- m.read.private is only ever shown to its owner, and only its owner's /sync is woken for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.storage import Storage
from dendrite_lite.storage import account_data as account_data_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import receipts as table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.receipts import ReadPosition
from dendrite_lite.storage.relations import relation_of
from dendrite_lite.sync.notifier import Notifier

if TYPE_CHECKING:
    from dendrite_lite.federation.edus import EduFanout

log = logging.getLogger(__name__)

__all__ = [
    "ReceiptsService",
    "ReadPosition",
    "READ",
    "READ_PRIVATE",
    "FULLY_READ",
    "RECEIPT_TYPES",
    "MAIN_THREAD",
    "MAX_RELATION_HOPS",
    "thread_of",
]

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"  # a marker in room account data, not a receipt (read_markers.py)
RECEIPT_TYPES = (READ, READ_PRIVATE)
MAIN_THREAD = "main"
MAX_RELATION_HOPS = 3  # receipts.md §Threaded read receipts: "a maximum of 3 hops is recommended"


def _relation(stored: StoredEvent) -> tuple[str, str] | None:
    """(rel_type, parent event_id) of the event's m.relates_to, if well formed."""
    return _event_relation(stored.event)


def _event_relation(event: Event) -> tuple[str, str] | None:
    return relation_of(event.content)


async def thread_of(event: Event, load: Callable[[str], Awaitable[Event | None]]) -> str:
    """The thread `event` is in: its thread root's event id, or MAIN_THREAD (push.md §Marking
    notifications as read: follow relations to an m.thread one, at most MAX_RELATION_HOPS).
    A thread root itself, and anything related to it other than by m.thread, is main timeline.
    `load` returns a parent event (None if unknown: then the event counts as main timeline)."""
    current = event
    for _ in range(MAX_RELATION_HOPS):
        relation = _event_relation(current)
        if relation is None:
            return MAIN_THREAD
        rel_type, parent = relation
        if rel_type == "m.thread":
            return parent
        loaded = await load(parent)
        if loaded is None:
            return MAIN_THREAD
        current = loaded
    return MAIN_THREAD


class ReceiptsService:
    """Create with `await ReceiptsService.open(storage, notifier)`."""

    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        *,
        position: int = 0,
        clock: Callable[[], float] = time.time,
        edus: EduFanout | None = None,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._position = position
        self._clock = clock
        self._edus = edus  # our users' public receipts go to the room's other servers
        # Called with the user ID after each stored read receipt (the push gateway's badge).
        self.on_read: Callable[[str], None] | None = None
        # Hears each stored public read receipt, local or remote: (room, user, event, ts,
        # thread, joined members). Application services' ephemeral events (MSC2409).
        self.on_receipt: Callable[[str, str, str, int, str | None, list[str]], None] | None = None

    @classmethod
    async def open(
        cls,
        storage: Storage,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.time,
        edus: EduFanout | None = None,
    ) -> ReceiptsService:
        position = await storage.db.read(table.select_max_stream_id)
        return cls(storage, notifier, position=position, clock=clock, edus=edus)

    def current_position(self) -> int:
        return self._position

    # --- writing -----------------------------------------------------------------------------

    async def check_target_room(self, user_id: str, room_id: str) -> list[str]:
        """The room's joined members; 403 M_FORBIDDEN unless the user is one of them.

        Also 403 for rooms we do not know, so a probe learns nothing.
        """
        members = await self._storage.db.read(
            lambda conn: state_table.select_members(conn, room_id, "join")
        )
        if user_id not in members:
            raise MatrixError(Errcode.FORBIDDEN, "You are not joined to this room.")
        return members

    async def check_target(self, user_id: str, room_id: str, event_id: str) -> tuple[StoredEvent, list[str]]:
        """The event a receipt or read marker points at, and the room's joined members.

        403 as check_target_room; 404 M_NOT_FOUND unless the event is a timeline event of
        this room.
        """
        members = await self.check_target_room(user_id, room_id)
        stored = await self._event(event_id)
        if stored is None or stored.event.room_id != room_id or stored.outlier:
            raise MatrixError(Errcode.NOT_FOUND, "Event not found in this room.")
        return stored, members

    async def send_receipt(
        self,
        user_id: str,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: Any = None,
    ) -> bool:
        """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}

        (m.read and m.read.private; m.fully_read goes to ReadMarkersService.) `thread_id` is
        the raw body value, None when absent. Returns False if the receipt was ignored because
        the user already acknowledged a later event.
        """
        if receipt_type not in RECEIPT_TYPES:
            raise MatrixError(
                Errcode.INVALID_PARAM, f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}"
            )
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
            raise MatrixError(Errcode.INVALID_PARAM, "thread_id field must be a non-empty string")
        stored, members = await self.check_target(user_id, room_id, event_id)
        if thread_id is not None and not await self._in_thread(stored, thread_id):
            raise MatrixError(
                Errcode.INVALID_PARAM, f"event_id {event_id} is not related to thread {thread_id}"
            )
        thread = thread_id if thread_id is not None else table.UNTHREADED
        ts = int(self._clock() * 1000)
        if not await self._store(room_id, receipt_type, user_id, thread, stored, ts):
            return False
        self._notifier.notify([user_id] if receipt_type == READ_PRIVATE else members)
        if receipt_type == READ and self.on_receipt is not None:
            self.on_receipt(room_id, user_id, event_id, ts, thread_id, list(members))
        if self.on_read is not None:
            self.on_read(user_id)
        if receipt_type == READ and self._edus is not None:
            try:
                await self._edus.receipt(room_id, user_id, event_id, ts=ts, thread_id=thread_id)
            except Exception:  # federation trouble never fails the local request
                log.exception("cannot queue m.receipt for %s in %s", user_id, room_id)
        return True

    async def receive_remote_receipt(
        self, room_id: str, user_id: str, event_id: str, ts: int, thread_id: str | None
    ) -> bool:
        """A public m.read receipt from an m.receipt EDU of the user's server (which the caller
        checked). Ignored (False) unless the user is joined and we hold the event as a timeline
        event of the room; moves only forward, like a local one."""
        members = await self._storage.db.read(
            lambda conn: state_table.select_members(conn, room_id, "join")
        )
        stored = await self._event(event_id)
        if user_id not in members or stored is None or stored.event.room_id != room_id or stored.outlier:
            return False
        thread = thread_id if thread_id else table.UNTHREADED
        if not await self._store(room_id, READ, user_id, thread, stored, ts):
            return False
        self._notifier.notify(members)
        if self.on_receipt is not None:
            self.on_receipt(room_id, user_id, event_id, ts, thread_id, list(members))
        return True

    async def _store(
        self, room_id: str, receipt_type: str, user_id: str, thread: str, stored: StoredEvent, ts: int
    ) -> bool:
        """Write the receipt unless the user's current one is at a later event."""

        async def write(conn: aiosqlite.Connection) -> int | None:
            current = await table.select_receipt_position(conn, room_id, receipt_type, user_id, thread)
            if current is not None and current.stream_ordering >= stored.stream_ordering:
                return None
            return await table.upsert_receipt(
                conn, room_id=room_id, receipt_type=receipt_type, user_id=user_id,
                thread_id=thread, event_id=stored.event.event_id, ts=ts,
            )

        stream_id = await self._storage.db.write(write)
        if stream_id is None:
            return False
        self._position = max(self._position, stream_id)
        return True

    async def _in_thread(self, stored: StoredEvent, thread_id: str) -> bool:
        """Is the event part of `thread_id` ("main" or a thread root's event ID)?"""
        current: StoredEvent | None = stored
        for _ in range(MAX_RELATION_HOPS + 1):
            if current is None:
                return False
            if current.event.event_id == thread_id:
                return True  # the thread root, or an event related to it
            relation = _relation(current)
            if relation is None:
                return thread_id == MAIN_THREAD
            rel_type, parent = relation
            if rel_type == "m.thread":
                return parent == thread_id
            current = await self._event(parent)
        # Too deep to tell: accept "main" like an unrelated event, refuse a specific thread.
        return thread_id == MAIN_THREAD

    async def _event(self, event_id: str) -> StoredEvent | None:
        return await self._storage.db.read(lambda conn: events_table.select_event(conn, event_id))

    # --- reading (for /sync) -----------------------------------------------------------------

    async def receipts_since(
        self, room_ids: Iterable[str], since: int, until: int, user_id: str
    ) -> dict[str, dict[str, Any]]:
        """{room_id: m.receipt content} for receipts written in (since, until].

        Others' m.read.private receipts are left out; rooms without receipts are absent.
        """
        rows = await self._storage.db.read(
            lambda conn: table.select_receipts_since(conn, list(room_ids), since, until)
        )
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r.receipt_type == READ_PRIVATE and r.user_id != user_id:
                continue
            receipt: dict[str, Any] = {"ts": r.ts}
            if r.thread_id != table.UNTHREADED:
                receipt["thread_id"] = r.thread_id
            by_type = out.setdefault(r.room_id, {}).setdefault(r.event_id, {})
            by_type.setdefault(r.receipt_type, {})[r.user_id] = receipt
        return out

    async def last_read(self, user_id: str, room_id: str) -> ReadPosition | None:
        """The furthest of the user's m.read / m.read.private receipt and m.fully_read marker.

        Unthreaded receipts and receipts on the main timeline count (clients with threads on
        send only the latter). None if the user has acknowledged nothing in the room.
        """

        async def load(conn: aiosqlite.Connection) -> ReadPosition | None:
            best = await table.select_latest_read(
                conn, room_id, user_id, RECEIPT_TYPES, (table.UNTHREADED, MAIN_THREAD)
            )
            marker = await _fully_read(conn, user_id, room_id)
            if marker is not None and (best is None or marker.stream_ordering > best.stream_ordering):
                best = marker
            return best

        return await self._storage.db.read(load)

    async def fully_read_position(self, user_id: str, room_id: str) -> ReadPosition | None:
        """The user's m.fully_read marker in the room, if set and its event is known."""
        return await self._storage.db.read(lambda conn: _fully_read(conn, user_id, room_id))


async def _fully_read(conn: aiosqlite.Connection, user_id: str, room_id: str) -> ReadPosition | None:
    marker = await account_data_table.select_account_data(conn, user_id, room_id, FULLY_READ)
    event_id = (marker or {}).get("event_id")
    if not isinstance(event_id, str):
        return None
    stored = await events_table.select_event(conn, event_id)
    return ReadPosition(event_id, stored.stream_ordering) if stored is not None else None
