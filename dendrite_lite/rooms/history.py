"""Room history: /messages, /context and /timestamp_to_event (client-server-api §Pagination,
§Room event context, §Timestamp to event).

Tokens are points in the room-event stream (sync.tokens): `t<pos>` sits just after the event at
<pos>. Paginating backwards from P returns events at or before P, newest first, and the next
token is just before the oldest returned; forwards from P returns events after P. A sync
timeline's prev_batch is the point just before its first event, so /messages from it continues
the timeline with no gap and no duplicate.

Every event served passes history visibility (rooms.visibility). A user who left a room pages
no further forward than their leave event. `end` comes with every non-empty chunk, so the call
after the room's start (dir=b) or newest event (dir=f) answers an empty chunk without `end`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.rooms.visibility import (
    HISTORY_VISIBILITY,
    filter_events_for_user_conn,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.sync.client_events import ClientEventSerializer
from dendrite_lite.sync.filters import RoomEventFilter
from dendrite_lite.sync.tokens import pagination_token, parse_pagination_token

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "HistoryService",
    "MessagesRequest",
    "check_read_access",
    "page_limit",
    "page_start",
    "parse_page",
]

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MEMBER = "m.room.member"


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    user_id: str
    device_id: str | None
    room_id: str
    dir: str  # "b" | "f"
    from_token: str | None = None
    to_token: str | None = None
    limit: int = DEFAULT_LIMIT
    filter: RoomEventFilter = RoomEventFilter()


@dataclass(frozen=True, slots=True)
class _Access:
    upper: int | None  # the user left: nothing after this position is theirs


def page_limit(value: int) -> int:
    """A page's `limit`: 400 M_INVALID_PARAM when negative, at most MAX_LIMIT."""
    if value < 0:
        raise MatrixError(Errcode.INVALID_PARAM, "limit must not be negative")
    return min(value, MAX_LIMIT)


async def page_start(conn: aiosqlite.Connection, start: int | None, backwards: bool) -> int:
    """Where a page starts: the `from` position, or without one the newest event (dir=b) or
    just before the oldest (dir=f)."""
    if start is not None:
        return start
    if backwards:
        return await events_table.select_max_stream_ordering(conn)
    return await events_table.select_min_stream_ordering(conn) - 1


def parse_page(
    direction: str, from_token: str | None, to_token: str | None
) -> tuple[bool, int | None, int | None]:
    """(backwards, from position, to position) of a paginated request (400 M_INVALID_PARAM
    for a bad direction or token)."""
    if direction not in ("b", "f"):
        raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'b' or 'f'")
    start = parse_pagination_token(from_token) if from_token else None
    to = parse_pagination_token(to_token) if to_token else None
    return direction == "b", start, to


async def _read_page(
    conn: aiosqlite.Connection,
    req: MessagesRequest,
    access: _Access,
    frm: int,
    to: int | None,
    limit: int,
) -> tuple[list[StoredEvent], int, bool]:
    """(the events the user may see, the position after the last one read, whether the room's
    end in that direction was reached). A full page that the filter or history visibility
    empties is followed by the next one: an empty chunk means "no further events"."""
    backwards = req.dir == "b"
    pos = frm
    while True:
        if backwards:
            raw = await events_table.select_room_events(
                conn, req.room_id, before=pos + 1, after=to, limit=limit, backwards=True
            )
        else:
            upper = to
            if access.upper is not None:
                upper = access.upper if upper is None else min(upper, access.upper)
            raw = await events_table.select_room_events(
                conn, req.room_id, after=pos,
                before=upper + 1 if upper is not None else None, limit=limit, backwards=False,
            )
        if raw:
            last = raw[-1].stream_ordering
            pos = last - 1 if backwards else last
        chunk = [s for s in raw if req.filter.matches(s.event.pdu, req.room_id)]
        chunk = await filter_events_for_user_conn(conn, req.user_id, chunk)
        exhausted = len(raw) < limit or not raw
        if chunk or exhausted:
            return chunk, pos, exhausted


# (room_id, limit) -> how many older events were fetched from other servers (federation/backfill.py).
Backfill = Callable[[str, int], Awaitable[int]]


class HistoryService:
    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], float] = time.time,
        backfill: Backfill | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._backfill = backfill

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def messages(self, req: MessagesRequest) -> dict[str, Any]:
        """GET /_matrix/client/v3/rooms/{roomId}/messages -> the response body.

        Paginating backwards past the oldest event we hold asks another server in the room for
        older ones first (backfill), then reads again."""
        body, exhausted = await self._messages(req)
        if (
            req.dir == "b"
            and exhausted
            and self._backfill is not None
            and await self._backfill(req.room_id, page_limit(req.limit))
        ):
            body, _ = await self._messages(req)
        return body

    async def _messages(self, req: MessagesRequest) -> tuple[dict[str, Any], bool]:
        """(the body, whether the page reached the end of what we hold in that direction)."""
        _, start, to = parse_page(req.dir, req.from_token, req.to_token)
        limit = page_limit(req.limit)

        async def read(conn: aiosqlite.Connection) -> tuple[dict[str, Any], bool]:
            access = await check_read_access(conn, req.user_id, req.room_id)
            backwards = req.dir == "b"
            frm = await page_start(conn, start, backwards)
            if access.upper is not None and backwards:
                frm = min(frm, access.upper)
            chunk, pos, exhausted = await _read_page(conn, req, access, frm, to, limit)
            # The spec: `start` "will be the same as the value given in `from`"; only a request
            # without `from` gets a token of ours.
            given = req.from_token
            body: dict[str, Any] = {"start": given if given else pagination_token(frm)}
            # `end` comes with every non-empty chunk, as Synapse does: the call after the last
            # page answers an empty chunk without `end` ("no further events").
            if chunk:
                body["end"] = pagination_token(pos)
            body["chunk"] = await self._serialize(conn, req.user_id, req.device_id, chunk)
            body["state"] = []
            if req.filter.lazy_load_members and chunk:
                oldest = min(s.stream_ordering for s in chunk)
                body["state"] = await self._member_state(
                    conn, req, req.room_id, oldest, {s.event.sender for s in chunk}
                )
            return body, exhausted

        return await self._storage.db.read(read)

    async def context(
        self,
        user_id: str,
        device_id: str | None,
        room_id: str,
        event_id: str,
        limit: int = DEFAULT_LIMIT,
        room_filter: RoomEventFilter = RoomEventFilter(),
    ) -> dict[str, Any]:
        """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId} -> the response body."""
        limit = page_limit(limit)

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            access = await check_read_access(conn, user_id, room_id)
            target = await events_table.select_event(conn, event_id)
            if (
                target is None
                or target.event.room_id != room_id
                or not await filter_events_for_user_conn(conn, user_id, [target])
            ):
                raise MatrixError(Errcode.NOT_FOUND, "Event not found.")
            pos = target.stream_ordering
            n_before = limit // 2
            before = await events_table.select_room_events(
                conn, room_id, before=pos, limit=n_before, backwards=True
            )
            upper = access.upper
            after = await events_table.select_room_events(
                conn, room_id, after=pos,
                before=upper + 1 if upper is not None else None,
                limit=limit - n_before, backwards=False,
            )
            start = before[-1].stream_ordering - 1 if before else pos - 1
            end = after[-1].stream_ordering if after else pos

            def keep(events: Sequence[StoredEvent]) -> list[StoredEvent]:
                return [s for s in events if room_filter.matches(s.event.pdu, room_id)]

            before_v = await filter_events_for_user_conn(conn, user_id, keep(before))
            after_v = await filter_events_for_user_conn(conn, user_id, keep(after))
            ser = await self._serializer(conn, user_id, device_id, [target, *before_v, *after_v])
            senders = {s.event.sender for s in (target, *before_v, *after_v)}
            group = (await sync_table.select_state_groups_at(conn, [(room_id, end)])).get(room_id)
            state: list[StoredEvent] = []
            if group is not None:
                members = sorted(senders) if room_filter.lazy_load_members else None
                ids = (await history_table.select_state_for_groups(conn, [group], members=members))[group]
                loaded = await events_table.select_events(conn, ids.values())
                state = [loaded[i] for _, i in sorted(ids.items()) if i in loaded]
            return {
                "event": ser.format(target),
                "events_before": ser.format_all(before_v),
                "events_after": ser.format_all(after_v),
                "start": pagination_token(start),
                "end": pagination_token(end),
                "state": ser.format_all(state),
            }

        return await self._storage.db.read(read)

    async def timestamp_to_event(
        self, user_id: str, room_id: str, ts: int, direction: str
    ) -> dict[str, Any]:
        """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event -> {event_id, origin_server_ts}"""
        if direction not in ("b", "f"):
            raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'b' or 'f'")

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            await check_read_access(conn, user_id, room_id)
            found = await history_table.select_event_near_ts(
                conn, room_id, ts, forwards=direction == "f"
            )
            if found is None or not await filter_events_for_user_conn(conn, user_id, [found]):
                raise MatrixError(Errcode.NOT_FOUND, f"No event found {direction!r} of {ts}")
            return {
                "event_id": found.event.event_id,
                "origin_server_ts": found.event.origin_server_ts,
            }

        return await self._storage.db.read(read)

    # --- helpers -----------------------------------------------------------------------------

    async def _serializer(
        self,
        conn: aiosqlite.Connection,
        user_id: str,
        device_id: str | None,
        events: Sequence[StoredEvent],
    ) -> ClientEventSerializer:
        viewer = Viewer(user_id, device_id, self._now_ms())
        return await serializer_with_bundles(conn, viewer, events)

    async def _serialize(
        self,
        conn: aiosqlite.Connection,
        user_id: str,
        device_id: str | None,
        events: Sequence[StoredEvent],
    ) -> list[dict[str, Any]]:
        return (await self._serializer(conn, user_id, device_id, events)).format_all(events)

    async def _member_state(
        self,
        conn: aiosqlite.Connection,
        req: MessagesRequest,
        room_id: str,
        position: int,
        senders: set[str],
    ) -> list[dict[str, Any]]:
        """Lazy-loading: the member events of the chunk's senders, as of the chunk's oldest event."""
        groups = await sync_table.select_state_groups_at(conn, [(room_id, position)])
        group = groups.get(room_id)
        if group is None:
            return []
        keys = [(MEMBER, s) for s in sorted(senders)]
        ids = (await history_table.select_state_for_groups(conn, [group], keys=keys))[group]
        loaded = await events_table.select_events(conn, ids.values())
        members = [loaded[i] for _, i in sorted(ids.items()) if i in loaded]
        return await self._serialize(conn, req.user_id, req.device_id, members)


async def check_read_access(conn: aiosqlite.Connection, user_id: str, room_id: str) -> _Access:
    """Whether the user may read the room's history at all (403 M_FORBIDDEN if not).

    Members and former members may read (visibility then decides per event); others only a
    world_readable room. Unknown rooms look like rooms the user is not in (403), as in Synapse."""
    current = (await history_table.select_current_memberships(conn, user_id, [room_id])).get(room_id)
    if current is not None and current[0] in ("join", "invite", "knock"):
        return _Access(upper=None)
    if current is not None and current[0] in ("leave", "ban"):
        return _Access(upper=current[2])
    hv_id = await state_table.select_current_state_event_id(conn, room_id, HISTORY_VISIBILITY, "")
    if hv_id is not None:
        hv = await events_table.select_event(conn, hv_id)
        if hv is not None and hv.event.content.get("history_visibility") == "world_readable":
            return _Access(upper=None)
    raise MatrixError(Errcode.FORBIDDEN, "You aren't a member of the room.")
