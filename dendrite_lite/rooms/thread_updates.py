"""Thread updates (MSC4360): which threads of the user's rooms had new events in a stretch of the
room stream, for sliding sync's `io.element.msc4360.threads` extension and its companion
GET /_matrix/client/unstable/io.element.msc4360/thread_updates.

A thread's update events are its m.thread children; each updated thread is sent once, however
many children it got, keyed by room then root:
- `thread_root` (when asked for): the root event with its bundled aggregations, so
  `unsigned.m.relations.m.thread.latest_event` shows the newest reply;
- `prev_batch`: when the stretch holds more than one child, a /relations token (`from`, dir=b)
  just before the newest child, to fetch the others.
Threads come newest update first. A page that may not hold them all gives a token for the
next one, `t<P>`: the threads whose newest update is before position P (as /threads pages).

Only rooms the user is joined to now, and only threads whose newest update the user may see
(rooms.visibility); the root is only sent when the user may see it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage.thread_updates import ThreadUpdate, select_thread_updates
from dendrite_lite.sync.tokens import pagination_token, parse_pagination_token

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ThreadUpdates",
    "ThreadUpdatesService",
    "collect_thread_updates",
    "joined_rooms",
    "parse_extension_limit",
]

DEFAULT_LIMIT = 100  # MSC4360's default
MAX_LIMIT = 100  # each root may carry a bundle: keep pages modest


@dataclass(slots=True)
class ThreadUpdates:
    updates: dict[str, dict[str, dict[str, Any]]]  # room -> root -> entry
    next_before: int | None  # more may be before this position (exclusive)


async def joined_rooms(
    conn: aiosqlite.Connection, user_id: str, room_ids: Sequence[str] | None = None
) -> list[str]:
    """The rooms (of `room_ids`, or all) the user is joined to now, in the given order."""
    memberships = await history_table.select_current_memberships(conn, user_id, room_ids)
    order = room_ids if room_ids is not None else sorted(memberships)
    return [r for r in order if memberships.get(r, ("",))[0] == "join"]


async def collect_thread_updates(
    conn: aiosqlite.Connection,
    viewer: Viewer,
    room_ids: Sequence[str],
    *,
    after: int | None,
    until: int | None,
    before: int | None = None,
    limit: int,
    include_roots: bool,
    skip: Callable[[ThreadUpdate], bool] | None = None,
    skipped_at_most: int = 0,
) -> ThreadUpdates:
    """The newest `limit` thread updates in (after, until] of `room_ids` (rooms the user is
    joined to), newest update before `before`. `skip` drops threads the caller has delivered
    otherwise; it may drop at most `skipped_at_most` of them (they are read on top of `limit`
    so that dropping them does not shorten the page)."""
    fetch = limit + 1 + skipped_at_most
    rows = await select_thread_updates(
        conn, room_ids, after=after, until=until, before=before, limit=fetch
    )
    wanted = [u for u in rows if skip is None or not skip(u)]
    latest = await events_table.select_events(conn, [u.latest_id for u in wanted])
    visible = {
        e.event.event_id
        for e in await filter_events_for_user_conn(
            conn, viewer.user_id, [latest[u.latest_id] for u in wanted if u.latest_id in latest]
        )
    }
    kept: list[ThreadUpdate] = []
    next_before: int | None = None
    for update in wanted:
        if update.latest_id not in visible:
            continue
        if len(kept) == limit:
            next_before = kept[-1].latest  # more to come, below the last one kept
            break
        kept.append(update)
    else:
        if len(rows) == fetch and rows:
            next_before = rows[-1].latest  # the query may have left some out
    roots = await _roots(conn, viewer, kept) if include_roots else {}
    updates: dict[str, dict[str, dict[str, Any]]] = {}
    for update in kept:
        entry: dict[str, Any] = {}
        if update.root_id in roots:
            entry["thread_root"] = roots[update.root_id]
        if update.count > 1:
            entry["prev_batch"] = pagination_token(update.latest - 1)
        updates.setdefault(update.room_id, {})[update.root_id] = entry
    return ThreadUpdates(updates, next_before)


async def _roots(
    conn: aiosqlite.Connection, viewer: Viewer, kept: Sequence[ThreadUpdate]
) -> dict[str, dict[str, Any]]:
    """root id -> the root in client format with its bundled aggregations (those the user may
    see)."""
    loaded = await events_table.select_events(conn, [u.root_id for u in kept])
    roots = await filter_events_for_user_conn(
        conn, viewer.user_id, [loaded[u.root_id] for u in kept if u.root_id in loaded]
    )
    ser = await serializer_with_bundles(conn, viewer, roots)
    return {r.event.event_id: ser.format(r) for r in roots}


def _limit(raw: Any, what: str) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return min(raw, MAX_LIMIT)
    raise MatrixError(Errcode.INVALID_PARAM, f"{what} must be a positive integer")


class ThreadUpdatesService:
    def __init__(self, storage: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock

    def viewer(self, user_id: str, device_id: str | None) -> Viewer:
        return Viewer(user_id, device_id, int(self._clock() * 1000))

    async def page(
        self,
        user_id: str,
        device_id: str | None,
        *,
        dir: str | None,
        from_token: str | None,
        to_token: str | None,
        limit: int | None,
    ) -> dict[str, Any]:
        """GET /_matrix/client/unstable/io.element.msc4360/thread_updates: the threads of all
        the user's joined rooms with updates after `to` (a sliding sync `pos`, or any room-stream
        token; the start when absent), newest update first, from `from` (a `prev_batch` of the
        extension or a `next_batch` of this endpoint) backwards. Each comes with its root."""
        if dir is None:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing dir parameter")
        if dir != "b":
            raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'b'")
        size = _limit(limit, "limit")
        before = parse_pagination_token(from_token) if from_token is not None else None
        after = parse_pagination_token(to_token) if to_token is not None else None
        viewer = self.viewer(user_id, device_id)

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            rooms = await joined_rooms(conn, user_id)
            found = await collect_thread_updates(
                conn, viewer, rooms, after=after, until=None, before=before, limit=size,
                include_roots=True,
            )
            body: dict[str, Any] = {"chunk": found.updates}
            if found.next_before is not None:
                body["next_batch"] = pagination_token(found.next_before)
            return body

        return await self._storage.db.read(read)


def parse_extension_limit(config: Mapping[str, Any]) -> int:
    return _limit(config.get("limit"), "extensions.io.element.msc4360.threads.limit")
