"""POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync: simplified sliding sync
(MSC4186), the sync Element X and the other matrix-rust-sdk clients use.

The long-poll is /sync's (sync/service.py): the request registers with the Notifier before it
looks for news, so a commit between the look and the wait still wakes it; a wake-up whose news
is not for this connection (a room outside every window) goes back to sleep. A list's count the
client does not hold is news too (a room it never saw left, outside the window: nothing else
tells it). A request without `pos` starts a new connection and answers at once, as does
`timeout` 0.

Extensions (to-device, e2ee, account data, receipts, typing...) plug in as `Extension`s: each
gets its part of the request's `extensions` and the streams' positions, and what it returns is
sent under its name. A dict counts as news for the long-poll; an `ExtensionAnswer` says whether
it is (e2ee's key counts go in every response, but only a device list change is news). Extensions
whose data is per room (account data, receipts) read and record in `sent` what the connection
has sent of each room's, so what changed while a room was out of every window comes with it when
it is back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.service import MAX_TIMEOUT_MS
from dendrite_lite.sync.sliding.connection import (
    ConnectionState,
    NewestRequests,
    SentStreams,
    load_connection,
    save_connection,
)
from dendrite_lite.sync.sliding.lists import (
    ListedRoom,
    load_bump_stamps,
    load_facts,
    select_room_list,
    window,
)
from dendrite_lite.sync.sliding.request import RoomConfig, SlidingSyncRequest
from dendrite_lite.sync.sliding.rooms import (
    RoomsContext,
    WantedRoom,
    build_room_results,
)
from dendrite_lite.sync.tokens import SyncToken, encode_sliding_pos

if TYPE_CHECKING:
    from dendrite_lite.users.presence import PresenceService

__all__ = ["Extension", "ExtensionAnswer", "ExtensionContext", "SlidingSyncService"]


@dataclass(frozen=True, slots=True)
class ExtensionContext:
    request: SlidingSyncRequest
    config: Mapping[str, Any]  # the request's extensions.<name>
    # The streams the previous response of the connection reached
    since: SyncToken | None
    now: SyncToken  # the streams this response reaches
    list_rooms: Mapping[str, Sequence[str]]  # list name -> the room IDs in its window
    subscribed_rooms: Sequence[str]
    rooms: Mapping[str, Mapping[str, Any]]  # the room responses
    # What the connection sent of each room's account data and receipts
    sent: SentStreams = field(default_factory=SentStreams)


@dataclass(frozen=True, slots=True)
class ExtensionAnswer:
    body: dict[str, Any]
    news: bool  # worth answering a long-poll for


class Extension(Protocol):
    name: str

    async def build(self, ctx: ExtensionContext) -> dict[str, Any] | ExtensionAnswer | None:
        """The extension's response, or None when it has nothing to send."""


@dataclass(slots=True)
class _Result:
    lists: dict[str, Any] = field(default_factory=dict)
    rooms: dict[str, Any] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    list_rooms: dict[str, list[str]] = field(default_factory=dict)
    extension_news: bool = False
    lists_news: bool = False  # a count the client does not hold

    @property
    def has_news(self) -> bool:
        return bool(self.rooms or self.extension_news or self.lists_news)


class SlidingSyncService:
    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        current_token: Callable[[], Awaitable[SyncToken]],
        *,
        presence: PresenceService | None = None,
        extensions: Sequence[Extension] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._current_token = current_token
        self._presence = presence
        self._extensions = tuple(extensions)
        self._clock = clock
        self._newest = NewestRequests()

    async def sync(self, req: SlidingSyncRequest) -> dict[str, Any]:
        if self._presence is not None:
            await self._presence.set_presence_from_sync(req.user_id, req.set_presence)
        now_ms = self._now_ms()
        state = await self._storage.db.read(
            lambda conn: load_connection(
                conn, req.user_id, req.device_id, req.conn_id, req.pos, now_ms
            )
        )
        self._newest.start(state)
        timeout_s = min(req.timeout_ms, MAX_TIMEOUT_MS) / 1000
        if state.conn_key is None or timeout_s <= 0:
            token = await self._current_token()
            return await self._respond(
                req, state, token, await self._build(req, state, token)
            )
        deadline = time.monotonic() + timeout_s
        while True:
            with self._notifier.listen(req.user_id) as listener:
                token = await self._current_token()
                result = await self._build(req, state, token)
                remaining = deadline - time.monotonic()
                if (
                    result.has_news
                    or remaining <= 0
                    or self._notifier.closed
                    or not await listener.wait(remaining)
                ):
                    return await self._respond(req, state, token, result)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _respond(
        self,
        req: SlidingSyncRequest,
        state: ConnectionState,
        token: SyncToken,
        result: _Result,
    ) -> dict[str, Any]:
        now_ms = self._now_ms()
        self._newest.finish(state)
        position = await self._storage.db.write(
            lambda conn: save_connection(conn, state, now_ms)
        )
        body: dict[str, Any] = {
            "pos": encode_sliding_pos(position, token),
            "lists": result.lists,
            "rooms": result.rooms,
            "extensions": result.extensions,
        }
        if req.txn_id is not None:
            body["txn_id"] = req.txn_id
        return body

    async def _build(
        self, req: SlidingSyncRequest, state: ConnectionState, token: SyncToken
    ) -> _Result:
        # A long-poll builds again after each wake-up.
        state.changed.clear()
        state.lists.clear()
        result = _Result()

        async def read(conn: aiosqlite.Connection) -> None:
            # A left room the client subscribes to is as good as one it was sent.
            sent = {*state.rooms, *req.room_subscriptions}
            rooms = await select_room_list(conn, req.user_id, token.room, sent)
            facts = await load_facts(conn, req.user_id, rooms, list(req.lists.values()))
            wanted: dict[str, WantedRoom] = {}
            for name, list_config in req.lists.items():
                count, picked = window(rooms, list_config, facts)
                result.lists[name] = {"count": count}
                state.lists[name] = count
                result.list_rooms[name] = [r.room_id for r in picked]
                for room in picked:
                    _want(wanted, room, list_config.config, name)
            by_id = {r.room_id: r for r in rooms}
            for room_id, config in req.room_subscriptions.items():
                if room_id in by_id:  # one the user may not see is ignored (MSC4186)
                    _want(wanted, by_id[room_id], config, None)
            await load_bump_stamps(
                conn, facts, [w.room for w in wanted.values()], token.room
            )
            ctx = RoomsContext(
                user_id=req.user_id,
                device_id=req.device_id,
                until=token.room,
                live_after=state.since.room if state.since is not None else None,
                now_ms=self._now_ms(),
                facts=facts,
            )
            result.rooms = await build_room_results(
                conn, ctx, list(wanted.values()), state
            )

        await self._storage.db.read(read)
        result.lists_news = state.lists_changed
        await self._add_extensions(req, state, token, result)
        return result

    async def _add_extensions(
        self,
        req: SlidingSyncRequest,
        state: ConnectionState,
        token: SyncToken,
        result: _Result,
    ) -> None:
        for extension in self._extensions:
            config = req.extensions.get(extension.name)
            if not isinstance(config, Mapping):
                continue
            ctx = ExtensionContext(
                request=req,
                config=config,
                since=state.since.clamp(token) if state.since is not None else None,
                now=token,
                list_rooms=result.list_rooms,
                subscribed_rooms=list(req.room_subscriptions),
                rooms=result.rooms,
                sent=SentStreams(state),
            )
            built = await extension.build(ctx)
            if isinstance(built, ExtensionAnswer):
                result.extensions[extension.name] = built.body
                result.extension_news |= built.news
            elif built is not None:
                result.extensions[extension.name] = built
                result.extension_news = True


def _want(
    wanted: dict[str, WantedRoom],
    room: ListedRoom,
    config: RoomConfig,
    list_name: str | None,
) -> None:
    """Add a room picked by a list or a subscription, combining the configs of all that pick
    it."""
    lists = (list_name,) if list_name is not None else ()
    seen = wanted.get(room.room_id)
    if seen is not None:
        config = seen.config.combine(config)
        lists = seen.lists + lists
    wanted[room.room_id] = WantedRoom(room, config, lists)
