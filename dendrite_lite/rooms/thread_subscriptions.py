"""Thread subscriptions (MSC4306) and their changes as sliding sync clients fetch them (MSC4308).

Which threads a user follows, set by their clients: manually (the user sent in the thread, or
chose to follow it) or automatically (a client saw the user mentioned in it, and names that
event, the "cause"). A manual subscription is never downgraded by an automatic one. An
automatic subscription coming after the user unsubscribed, with a cause the unsubscription
already saw, is refused with 409 IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION, so a dormant
device cannot subscribe the user again to a thread they left.

The thread root must be an event of the room the user may see (404 M_NOT_FOUND otherwise, so
event ids cannot be probed), as in Synapse; the cause must be a child of that thread (400
IO.ELEMENT.MSC4306.M_NOT_IN_THREAD).

Every change takes the next position of the thread-subscriptions stream (SyncToken's
`thread_subscriptions`): sliding sync's extension sends the changes after a connection's
position, and the change wakes the user's long-polls. `current_position()` only moves after the
change's commit, so a sync that reads up to it never skips one. Rows are never deleted, so a
position handed out never comes back.

Tokens of GET /thread_subscriptions are `ts<position>` (Synapse's shape); its `to` also takes a
sliding sync `pos`, whose thread-subscriptions position it reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import thread_subscriptions as table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.relations import relation_of
from dendrite_lite.storage.thread_subscriptions import Conflict, SubscriptionChange
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.tokens import parse_sliding_pos

__all__ = [
    "CONFLICTING_UNSUBSCRIPTION",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "NOT_IN_THREAD",
    "ThreadSubscriptionsService",
    "changes_json",
    "parse_position_token",
    "position_token",
]

# MSC4306 §Unstable amendments
CONFLICTING_UNSUBSCRIPTION = "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"
NOT_IN_THREAD = "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"
# MSC4308: 100 unless asked; Synapse's most per request.
DEFAULT_LIMIT = 100
MAX_LIMIT = 512

# An event id as Synapse accepts one: `$local:domain` (room versions 1, 2) or `$` and 43
# characters of (URL-safe) unpadded base64 (versions 3 and later).
_EVENT_ID = re.compile(r"\$(?:[^:]+:.+|[A-Za-z0-9_\-]{43}|[A-Za-z0-9+/]{43})", re.DOTALL)
_TOKEN = re.compile(r"ts([0-9]{1,18})")


def position_token(position: int) -> str:
    return f"ts{position}"


def parse_position_token(token: str, *, accept_pos: bool = False) -> int | None:
    """The position of a `ts<n>` token (and, with accept_pos, of a sliding sync `pos`); None if
    it is neither."""
    match = _TOKEN.fullmatch(token)
    if match is not None:
        return int(match[1])
    if accept_pos:
        pos = parse_sliding_pos(token)
        if pos is not None:
            return pos[1].thread_subscriptions
    return None


def changes_json(changes: Iterable[SubscriptionChange]) -> dict[str, Any]:
    """MSC4308's `subscribed` / `unsubscribed` maps (room -> thread root -> change), each left
    out when empty; `bump_stamp` is the change's stream position."""
    subscribed: dict[str, dict[str, Any]] = {}
    unsubscribed: dict[str, dict[str, Any]] = {}
    for c in changes:
        if c.subscribed:
            entry = {"automatic": c.automatic, "bump_stamp": c.stream_id}
            subscribed.setdefault(c.room_id, {})[c.root_id] = entry
        else:
            unsubscribed.setdefault(c.room_id, {})[c.root_id] = {"bump_stamp": c.stream_id}
    body: dict[str, Any] = {}
    if subscribed:
        body["subscribed"] = subscribed
    if unsubscribed:
        body["unsubscribed"] = unsubscribed
    return body


def _check_ids(room_id: str, root_id: str) -> None:
    if not room_id.startswith("!"):
        raise MatrixError(Errcode.INVALID_PARAM, f"{room_id!r} is not a valid room ID")
    if not root_id.startswith("$"):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid event ID")


def _automatic(body: Mapping[str, Any]) -> str | None:
    value = body.get("automatic")
    if value is None:
        return None
    if not isinstance(value, str) or _EVENT_ID.fullmatch(value) is None:
        raise MatrixError(Errcode.BAD_JSON, "automatic must be the event ID of the cause event")
    return value


async def _visible_event(
    conn: aiosqlite.Connection, user_id: str, room_id: str, event_id: str
) -> StoredEvent | None:
    found = await events_table.select_event(conn, event_id)
    if found is None or found.event.room_id != room_id:
        return None
    return found if await filter_events_for_user_conn(conn, user_id, [found]) else None


async def _thread_root(
    conn: aiosqlite.Connection, user_id: str, room_id: str, root_id: str
) -> StoredEvent:
    root = await _visible_event(conn, user_id, room_id, root_id)
    if root is None:
        raise MatrixError(Errcode.NOT_FOUND, "No such thread root")
    return root


class ThreadSubscriptionsService:
    """Create with `await ThreadSubscriptionsService.open(storage, notifier)`."""

    def __init__(self, storage: Storage, notifier: Notifier, *, position: int = 0) -> None:
        self._storage = storage
        self._notifier = notifier
        self._position = position

    @classmethod
    async def open(cls, storage: Storage, notifier: Notifier) -> ThreadSubscriptionsService:
        return cls(storage, notifier, position=await storage.db.read(table.select_max_stream_id))

    def current_position(self) -> int:
        return self._position

    async def get(self, user_id: str, room_id: str, root_id: str) -> dict[str, Any]:
        """GET .../rooms/{roomId}/thread/{eventId}/subscription"""
        _check_ids(room_id, root_id)

        async def read(conn: aiosqlite.Connection) -> bool | None:
            await _thread_root(conn, user_id, room_id, root_id)
            return await table.select_subscription(conn, user_id, room_id, root_id)

        automatic = await self._storage.db.read(read)
        if automatic is None:
            raise MatrixError(Errcode.NOT_FOUND, "Not subscribed.")
        return {"automatic": automatic}

    async def subscribe(
        self, user_id: str, room_id: str, root_id: str, body: Mapping[str, Any]
    ) -> None:
        """PUT .../rooms/{roomId}/thread/{eventId}/subscription"""
        _check_ids(room_id, root_id)
        cause_id = _automatic(body)

        async def read(conn: aiosqlite.Connection) -> tuple[int, int] | None:
            await _thread_root(conn, user_id, room_id, root_id)
            if cause_id is None:
                return None
            found = await events_table.select_event(conn, cause_id)
            if found is None or found.event.room_id != room_id:
                raise MatrixError(Errcode.NOT_FOUND, "Automatic subscription event not found")
            if not await filter_events_for_user_conn(conn, user_id, [found]):
                raise MatrixError(
                    Errcode.FORBIDDEN, "You don't have permission to access that event."
                )
            if relation_of(found.event.content) != ("m.thread", root_id):
                raise MatrixError(
                    NOT_IN_THREAD,
                    "Automatic subscription must use an event in the thread",
                    status=400,
                )
            return found.stream_ordering, found.event.depth

        cause = await self._storage.db.read(read)
        outcome = await self._storage.db.write(
            lambda conn: table.subscribe(conn, user_id, room_id, root_id, cause)
        )
        if isinstance(outcome, Conflict):
            raise MatrixError(
                CONFLICTING_UNSUBSCRIPTION,
                "Automatic subscription obsoleted by an unsubscription request.",
                status=409,
            )
        self._changed(user_id, outcome)

    async def unsubscribe(self, user_id: str, room_id: str, root_id: str) -> None:
        """DELETE .../rooms/{roomId}/thread/{eventId}/subscription"""
        _check_ids(room_id, root_id)
        await self._storage.db.read(lambda conn: _thread_root(conn, user_id, room_id, root_id))
        outcome = await self._storage.db.write(
            lambda conn: table.unsubscribe(conn, user_id, room_id, root_id)
        )
        self._changed(user_id, outcome)

    def _changed(self, user_id: str, stream_id: int | None) -> None:
        if stream_id is None:
            return  # nothing changed: no position taken, nobody to wake
        self._position = max(self._position, stream_id)
        self._notifier.notify([user_id])

    async def changes(
        self, user_id: str, after: int, upto: int, limit: int
    ) -> list[SubscriptionChange]:
        """The newest `limit` changes in (after, upto], oldest first."""
        if upto <= after:
            return []
        return await self._storage.db.read(
            lambda conn: table.select_changes(conn, user_id, after, upto, limit)
        )

    async def page(
        self,
        user_id: str,
        *,
        dir: str | None,
        from_token: str | None,
        to_token: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """GET /_matrix/client/unstable/io.element.msc4308/thread_subscriptions: changes walked
        backwards from `from` (the newest when absent) down to `to` (exclusive; the start when
        absent). When the page is full, `end` continues below its oldest change."""
        if dir is None:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing dir parameter")
        if dir != "b":
            raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'b'")
        if limit <= 0:
            raise MatrixError(Errcode.INVALID_PARAM, "limit must be greater than 0")
        limit = min(limit, MAX_LIMIT)
        upto = self._position
        if from_token is not None:
            parsed = parse_position_token(from_token)
            if parsed is None:
                raise MatrixError(Errcode.INVALID_PARAM, "`from` is not a valid token")
            upto = parsed
        after = 0
        if to_token is not None:
            parsed = parse_position_token(to_token, accept_pos=True)
            if parsed is None:
                raise MatrixError(Errcode.INVALID_PARAM, "`to` is not a valid token")
            after = parsed
        found = await self.changes(user_id, after, upto, limit)
        body = changes_json(found)
        if len(found) == limit:
            # There may be more below: continue just under the oldest one sent.
            body["end"] = position_token(found[0].stream_id - 1)
        return body
