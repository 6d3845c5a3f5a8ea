"""Relationships API and thread list (relations.yaml, threads_list.yaml).

/relations pages through a parent's children by stream position, with the same tokens as
/messages (`t<pos>`; a sync token works too): backwards from P returns children at or before P,
newest first, and next_batch sits just before the oldest returned; forwards from P returns
children after P. `to` bounds the page the way /messages' `to` does.

/threads orders thread roots by their latest activity (the stream position of the newest
m.thread child); next_batch is the latest activity of the last root returned, and the next page
holds roots whose latest activity is older.

Both serve only what the user may read: the room (rooms.history.check_read_access: 403), the
parent event (404 otherwise, so ids cannot be probed) and each child or root (history visibility,
applied after the page is read, as /messages does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.rooms.history import check_read_access, parse_page
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import relations as relations_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.relations import RECURSION_DEPTH, RelationQuery, relation_of
from dendrite_lite.sync.tokens import pagination_token, parse_pagination_token

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "RelationsRequest",
    "RelationsService",
    "ThreadsRequest",
    "check_thread_start",
]

# Synapse's defaults; clients (Element) always pass their own limit.
DEFAULT_LIMIT = 5
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class RelationsRequest:
    user_id: str
    device_id: str | None
    room_id: str
    event_id: str
    rel_type: str | None = None
    event_type: str | None = None
    from_token: str | None = None
    to_token: str | None = None
    limit: int = DEFAULT_LIMIT
    dir: str = "b"
    recurse: bool = False


@dataclass(frozen=True, slots=True)
class ThreadsRequest:
    user_id: str
    device_id: str | None
    room_id: str
    include: str = "all"  # all | participated
    limit: int = DEFAULT_LIMIT
    from_token: str | None = None


def _limit(value: int) -> int:
    if value < 1:
        raise MatrixError(Errcode.INVALID_PARAM, "limit must be a positive integer")
    return min(value, MAX_LIMIT)


class RelationsService:
    def __init__(self, storage: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock

    def _viewer(self, user_id: str, device_id: str | None) -> Viewer:
        return Viewer(user_id, device_id, int(self._clock() * 1000))

    async def relations(self, req: RelationsRequest) -> dict[str, Any]:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]"""
        backwards, start, to = parse_page(req.dir, req.from_token, req.to_token)
        limit = _limit(req.limit)
        query = RelationQuery(
            parent=req.event_id,
            room_id=req.room_id,
            rel_type=req.rel_type,
            event_type=req.event_type,
            before=_plus_one(start) if backwards else _plus_one(to),
            after=to if backwards else start,
            limit=limit,
            backwards=backwards,
            recurse=req.recurse,
        )

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            await check_read_access(conn, req.user_id, req.room_id)
            await _visible_parent(conn, req.user_id, req.room_id, req.event_id)
            rows = await relations_table.select_children(conn, query)
            viewer = self._viewer(req.user_id, req.device_id)
            body = {"chunk": await _visible_chunk(conn, viewer, [r.event_id for r in rows])}
            if len(rows) == limit:
                last = rows[-1].stream_ordering
                body["next_batch"] = pagination_token(last - 1 if backwards else last)
            if req.from_token:
                body["prev_batch"] = req.from_token
            if req.recurse:
                body["recursion_depth"] = RECURSION_DEPTH
            return body

        return await self._storage.db.read(read)

    async def threads(self, req: ThreadsRequest) -> dict[str, Any]:
        """GET /_matrix/client/v1/rooms/{roomId}/threads"""
        if req.include not in ("all", "participated"):
            raise MatrixError(Errcode.INVALID_PARAM, "include must be 'all' or 'participated'")
        limit = _limit(req.limit)
        before = parse_pagination_token(req.from_token) if req.from_token else None
        participant = req.user_id if req.include == "participated" else None

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            await check_read_access(conn, req.user_id, req.room_id)
            roots = await relations_table.select_thread_roots(
                conn, req.room_id, before=before, limit=limit, participant=participant
            )
            viewer = self._viewer(req.user_id, req.device_id)
            body = {"chunk": await _visible_chunk(conn, viewer, [r.root_id for r in roots])}
            if len(roots) == limit:
                body["next_batch"] = pagination_token(roots[-1].latest)
            return body

        return await self._storage.db.read(read)


async def _visible_chunk(
    conn: aiosqlite.Connection, viewer: Viewer, event_ids: list[str]
) -> list[dict[str, Any]]:
    """The events (in the given order) the viewer may see, formatted with their bundles."""
    loaded = await events_table.select_events(conn, event_ids)
    ordered = [loaded[i] for i in event_ids if i in loaded]
    chunk = await filter_events_for_user_conn(conn, viewer.user_id, ordered)
    return (await serializer_with_bundles(conn, viewer, chunk)).format_all(chunk)


async def check_thread_start(storage: Storage, content: Mapping[str, Any]) -> None:
    """threading.md §Validation of m.thread relationships: a thread cannot start from an event
    that is itself a child (has an m.relates_to with a rel_type), so threads never nest:
    400 M_UNKNOWN, as the spec says for want of a specific code."""
    relation = relation_of(content)
    if relation is None or relation[0] != "m.thread":
        return
    parent = await storage.db.read(lambda c: events_table.select_event(c, relation[1]))
    if parent is not None and relation_of(parent.event.content) is not None:
        raise MatrixError(
            Errcode.UNKNOWN, "Cannot start a thread from an event with a relation", status=400
        )


def _plus_one(position: int | None) -> int | None:
    return position + 1 if position is not None else None


async def _visible_parent(
    conn: aiosqlite.Connection, user_id: str, room_id: str, event_id: str
) -> StoredEvent:
    parent = await events_table.select_event(conn, event_id)
    if (
        parent is None
        or parent.event.room_id != room_id
        or not await filter_events_for_user_conn(conn, user_id, [parent])
    ):
        raise MatrixError(Errcode.NOT_FOUND, "Event not found.")
    return parent
