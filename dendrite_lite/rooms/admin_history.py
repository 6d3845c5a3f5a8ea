"""A server admin reading any room's history (Synapse's admin API rooms.md: Room Messages,
Event Context, Room Timestamp to Event): the client API's /messages, /context and
/timestamp_to_event without membership or history visibility, for investigating a room or a
report. Outliers, rejected and soft-failed events stay out, as they do for every client."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.rooms.history import (
    DEFAULT_LIMIT,
    page_limit,
    page_start,
    parse_page,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.sync.client_events import ClientEventSerializer
from dendrite_lite.sync.filters import RoomEventFilter
from dendrite_lite.sync.tokens import pagination_token

__all__ = ["AdminHistory", "AdminMessagesRequest", "found_room"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AdminMessagesRequest:
    room_id: str
    dir: str
    from_token: str | None = None
    to_token: str | None = None
    limit: int = DEFAULT_LIMIT
    filter: RoomEventFilter = field(default_factory=RoomEventFilter)


def found_room(value: T | None, room_id: str) -> T:
    """`value`, read from a room we hold (None: the room is unknown, 404 M_NOT_FOUND)."""
    if value is None:
        raise MatrixError(Errcode.NOT_FOUND, f"Room {room_id} not found")
    return value


def _timeline(events: Sequence[StoredEvent]) -> list[StoredEvent]:
    return [
        s
        for s in events
        if not s.outlier and not s.soft_failed and s.event.rejected_reason is None
    ]


class AdminHistory:
    def __init__(
        self, storage: Storage, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._clock = clock

    async def _serializer(
        self, conn: aiosqlite.Connection, events: Sequence[StoredEvent]
    ) -> ClientEventSerializer:
        # No viewing user: no transaction ids, bundles as anyone sees them.
        return await serializer_with_bundles(
            conn, Viewer("", None, int(self._clock() * 1000)), events
        )

    async def messages(self, req: AdminMessagesRequest) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}/messages"""
        backwards, start, to = parse_page(req.dir, req.from_token, req.to_token)
        limit = page_limit(req.limit)

        async def read(conn: aiosqlite.Connection) -> dict[str, Any] | None:
            if await rooms_table.select_room(conn, req.room_id) is None:
                return None
            frm = await page_start(conn, start, backwards)
            raw = await events_table.select_room_events(
                conn,
                req.room_id,
                limit=limit,
                backwards=backwards,
                before=frm + 1 if backwards else (to + 1 if to is not None else None),
                after=to if backwards else frm,
            )
            body: dict[str, Any] = {"start": req.from_token or pagination_token(frm)}
            if raw:
                last = raw[-1].stream_ordering
                body["end"] = pagination_token(last - 1 if backwards else last)
            chunk = [
                s
                for s in _timeline(raw)
                if req.filter.matches(s.event.pdu, req.room_id)
            ]
            body["chunk"] = (await self._serializer(conn, chunk)).format_all(chunk)
            body["state"] = []
            return body

        return found_room(await self._storage.db.read(read), req.room_id)

    async def context(
        self, room_id: str, event_id: str, limit: int = DEFAULT_LIMIT
    ) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}/context/{eventId}: the event, up to `limit`
        events around it (half before), and the room's state after the last of them."""
        limit = page_limit(limit)

        async def read(conn: aiosqlite.Connection) -> dict[str, Any] | None:
            if await rooms_table.select_room(conn, room_id) is None:
                return None
            target = await events_table.select_event(conn, event_id)
            if (
                target is None
                or target.event.room_id != room_id
                or not _timeline([target])
            ):
                raise MatrixError(
                    Errcode.NOT_FOUND, f"Event {event_id} not found in {room_id}"
                )
            pos = target.stream_ordering
            before = _timeline(
                await events_table.select_room_events(
                    conn, room_id, before=pos, limit=limit // 2, backwards=True
                )
            )
            after = _timeline(
                await events_table.select_room_events(
                    conn, room_id, after=pos, limit=limit - limit // 2, backwards=False
                )
            )
            end = after[-1].stream_ordering if after else pos
            group = (
                await sync_table.select_state_groups_at(conn, [(room_id, end)])
            ).get(room_id)
            state: list[StoredEvent] = []
            if group is not None:
                ids = (await history_table.select_state_for_groups(conn, [group]))[
                    group
                ]
                loaded = await events_table.select_events(conn, ids.values())
                state = [loaded[i] for _, i in sorted(ids.items()) if i in loaded]
            ser = await self._serializer(conn, [target, *before, *after])
            return {
                "event": ser.format(target),
                "events_before": ser.format_all(before),
                "events_after": ser.format_all(after),
                "start": pagination_token(
                    before[-1].stream_ordering - 1 if before else pos - 1
                ),
                "end": pagination_token(end),
                "state": ser.format_all(state),
            }

        return found_room(await self._storage.db.read(read), room_id)

    async def timestamp_to_event(
        self, room_id: str, ts: int, direction: str
    ) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}/timestamp_to_event: the timeline event nearest
        `ts` in direction `dir`."""
        if direction not in ("f", "b"):
            raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'f' or 'b'")

        async def read(conn: aiosqlite.Connection) -> dict[str, Any] | None:
            if await rooms_table.select_room(conn, room_id) is None:
                return None
            found = await history_table.select_event_near_ts(
                conn, room_id, ts, forwards=direction == "f"
            )
            if found is None:
                raise MatrixError(
                    Errcode.NOT_FOUND, f"No event found {direction!r} of {ts}"
                )
            return {
                "event_id": found.event.event_id,
                "origin_server_ts": found.event.origin_server_ts,
            }

        return found_room(await self._storage.db.read(read), room_id)
