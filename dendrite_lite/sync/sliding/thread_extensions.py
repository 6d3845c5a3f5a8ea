"""Sliding sync's thread extensions: thread subscriptions (MSC4308, what matrix-rust-sdk clients
such as Element X enable when /versions has org.matrix.msc4306) and thread updates (MSC4360,
which no client we know of sends yet; served as the MSC defines it).

`io.element.msc4308.thread_subscriptions` ({enabled, limit}): the user's thread subscription
changes after the connection's previous response (all of them on its first), the newest `limit`
(100 unless asked, at most 512), as {subscribed: {room: {root: {automatic, bump_stamp}}},
unsubscribed: {room: {root: {bump_stamp}}}}; when the limit may have cut some off, `prev_batch`
for GET /thread_subscriptions (`from`, with the request's `pos` as `to`). Per user, not per
room, so `lists`/`rooms` do not apply (as in Synapse). Left out when there is no change.

`io.element.msc4360.threads` ({enabled, include_roots, limit, lists, rooms}): the threads with
new replies after the connection's previous response (rooms/thread_updates.py has the entries),
newest first, at most `limit` (100), with `prev_batch` for GET /thread_updates when there may be
more. Rooms: those the request's `lists`/`rooms` pick when it names either (as the other
extensions scope), else every room the user is joined to (MSC4360: "the user's joined rooms").
Without include_roots, a thread whose every new reply is on a room timeline of this very
response is left out (the client has it). Left out when there is nothing.

Both count as news for a long-poll; a subscription change wakes it through the notifier (the
thread-subscriptions stream in the sync token), a reply as any room event does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.thread_subscriptions import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    changes_json,
    position_token,
)
from dendrite_lite.rooms.thread_updates import (
    collect_thread_updates,
    joined_rooms,
    parse_extension_limit,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage.thread_updates import ThreadUpdate
from dendrite_lite.sync.sliding.extensions import scoped_rooms
from dendrite_lite.sync.sliding.service import (
    Extension,
    ExtensionAnswer,
    ExtensionContext,
)
from dendrite_lite.sync.tokens import pagination_token

if TYPE_CHECKING:
    from dendrite_lite.rooms.thread_subscriptions import ThreadSubscriptionsService
    from dendrite_lite.rooms.thread_updates import ThreadUpdatesService

__all__ = [
    "THREADS",
    "THREAD_SUBSCRIPTIONS",
    "ThreadSubscriptionsExtension",
    "ThreadsExtension",
    "thread_extensions",
]

THREAD_SUBSCRIPTIONS = "io.element.msc4308.thread_subscriptions"
THREADS = "io.element.msc4360.threads"


def _enabled(ctx: ExtensionContext) -> bool:
    return ctx.config.get("enabled") is True


class ThreadSubscriptionsExtension:
    name = THREAD_SUBSCRIPTIONS

    def __init__(self, subscriptions: ThreadSubscriptionsService) -> None:
        self._subscriptions = subscriptions

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        limit = _subscriptions_limit(ctx.config.get("limit"))
        after = ctx.since.thread_subscriptions if ctx.since is not None else 0
        changes = await self._subscriptions.changes(
            ctx.request.user_id, after, ctx.now.thread_subscriptions, limit
        )
        if not changes:
            return None
        body = changes_json(changes)
        if len(changes) == limit:
            # The limit may have left older changes out: they are below the oldest one sent.
            body["prev_batch"] = position_token(changes[0].stream_id - 1)
        return ExtensionAnswer(body, news=True)


def _subscriptions_limit(raw: Any) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return min(raw, MAX_LIMIT)
    raise MatrixError(
        Errcode.INVALID_PARAM, f"extensions.{THREAD_SUBSCRIPTIONS}.limit must be a positive integer"
    )


class ThreadsExtension:
    name = THREADS

    def __init__(self, storage: Storage, updates: ThreadUpdatesService) -> None:
        self._storage = storage
        self._updates = updates

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        include_roots = ctx.config.get("include_roots", False)
        if not isinstance(include_roots, bool):
            raise MatrixError(
                Errcode.INVALID_PARAM, f"extensions.{THREADS}.include_roots must be a boolean"
            )
        limit = parse_extension_limit(ctx.config)
        user_id = ctx.request.user_id
        scoped = _scope(ctx)
        viewer = self._updates.viewer(user_id, ctx.request.device_id)
        after = ctx.since.room if ctx.since is not None else None
        if after is not None and after >= ctx.now.room:
            return None  # no event since the previous response: no thread moved

        async def read(conn: aiosqlite.Connection) -> tuple[dict[str, Any], int | None]:
            rooms = await joined_rooms(conn, user_id, scoped)
            first_shown: dict[str, int] = {}
            shown = 0
            if not include_roots:
                first_shown, shown = await _timeline_starts(conn, ctx.rooms, rooms)

            def delivered(update: ThreadUpdate) -> bool:
                start = first_shown.get(update.room_id)
                return start is not None and update.earliest >= start

            found = await collect_thread_updates(
                conn, viewer, rooms, after=after, until=ctx.now.room, limit=limit,
                include_roots=include_roots, skip=delivered, skipped_at_most=shown,
            )
            return found.updates, found.next_before

        updates, next_before = await self._storage.db.read(read)
        if not updates and next_before is None:
            return None
        body: dict[str, Any] = {"updates": updates}
        if next_before is not None:
            body["prev_batch"] = pagination_token(next_before)
        return ExtensionAnswer(body, news=bool(updates))


def _scope(ctx: ExtensionContext) -> list[str] | None:
    """The rooms the request's `lists`/`rooms` pick, or None (every joined room) when it names
    neither."""
    if "lists" not in ctx.config and "rooms" not in ctx.config:
        return None
    return scoped_rooms(ctx)


async def _timeline_starts(
    conn: aiosqlite.Connection, rooms: Mapping[str, Mapping[str, Any]], room_ids: list[str]
) -> tuple[dict[str, int], int]:
    """For the rooms of this response with a timeline: room -> stream position of its first
    timeline event (a timeline runs without gaps up to the response's position), and how many
    timeline events they hold in all."""
    first: dict[str, str] = {}
    count = 0
    wanted = set(room_ids)
    for room_id, room in rooms.items():
        timeline = room.get("timeline") or ()
        if room_id in wanted and timeline:
            first[room_id] = timeline[0].get("event_id", "")
            count += len(timeline)
    positions = await history_table.select_stream_orderings(conn, list(first.values()))
    return {r: positions[e] for r, e in first.items() if e in positions}, count


def thread_extensions(
    storage: Storage, subscriptions: ThreadSubscriptionsService, updates: ThreadUpdatesService
) -> list[Extension]:
    """The thread extensions, for SlidingSyncService (next to extensions.sliding_extensions)."""
    return [ThreadSubscriptionsExtension(subscriptions), ThreadsExtension(storage, updates)]
