"""Typing notifications (typing_notifications.md), kept in memory only.

Each room has the set of users typing now, each with an asyncio timer that removes them when
their timeout runs out (capped, so a client that dies mid-sentence does not type forever).
Every change of a room's list takes the next position of the typing stream; /sync asks for the
rooms whose list changed after its token and gets their whole current list (clients REPLACE
their list with it).

Positions restart at 0 with the process. A /sync token from before a restart can be ahead of
the counter; such a token is treated as 0 (every room with someone typing is sent), which is
harmless because clients replace the list anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import state as state_table
from dendrite_lite.sync.notifier import Notifier

if TYPE_CHECKING:
    from dendrite_lite.federation.edus import EduFanout

__all__ = ["TypingService", "DEFAULT_TIMEOUT_MS", "MAX_TIMEOUT_MS", "REMOTE_TIMEOUT_MS"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30_000  # when a client says typing=true without a timeout
MAX_TIMEOUT_MS = 120_000
# m.typing EDUs carry no timeout: a remote user types until their server says otherwise or this
# runs out. Our own typing users are re-announced to other servers every REMOTE_PING_MS so
# they do not time out there while still typing.
REMOTE_TIMEOUT_MS = 60_000
REMOTE_PING_MS = 30_000


class TypingService:
    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        *,
        max_timeout_ms: int = MAX_TIMEOUT_MS,
        edus: EduFanout | None = None,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._edus = edus  # our users' changes go to the room's other servers
        self._announced: dict[tuple[str, str], float] = {}  # (room, user) -> last typing=true EDU
        self._max_timeout_ms = max_timeout_ms
        self._position = 0
        self._typing: dict[str, dict[str, asyncio.TimerHandle]] = {}
        self._changed_at: dict[str, int] = {}  # room -> position of its last change
        self._tasks: set[asyncio.Task[None]] = set()
        # Hears each change of a room's typing list: (room, users typing, joined members).
        # Application services' ephemeral events (MSC2409).
        self.on_change: Callable[[str, list[str], list[str]], None] | None = None

    def current_position(self) -> int:
        return self._position

    async def set_typing(
        self, requester: str, user_id: str, room_id: str, typing: Any, timeout_ms: Any = None
    ) -> None:
        """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}

        `typing` and `timeout_ms` are the raw body values. Only for yourself (403), only in a
        room you are joined to (403).
        """
        if requester != user_id:
            raise MatrixError(Errcode.FORBIDDEN, "Cannot set the typing state of other users.")
        if not isinstance(typing, bool):
            raise MatrixError(Errcode.BAD_JSON, "'typing' must be true or false")
        if timeout_ms is None:
            timeout_ms = DEFAULT_TIMEOUT_MS
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 0:
            if typing:
                raise MatrixError(Errcode.BAD_JSON, "'timeout' must be a non-negative integer")
        members = await self._members(room_id)
        if user_id not in members:
            raise MatrixError(Errcode.FORBIDDEN, "You are not joined to this room.")
        if typing:
            changed = self._start(room_id, user_id, min(timeout_ms, self._max_timeout_ms), members)
        else:
            changed = self._stop(room_id, user_id, members)
        await self._announce(room_id, user_id, typing, changed)

    async def set_remote_typing(self, room_id: str, user_id: str, typing: bool) -> bool:
        """An m.typing EDU from the user's server (which the caller checked). Ignored (False)
        unless the user is joined to the room."""
        members = await self._members(room_id)
        if user_id not in members:
            return False
        if typing:
            self._start(room_id, user_id, REMOTE_TIMEOUT_MS, members)
        else:
            self._stop(room_id, user_id, members)
        return True

    async def typing_since(self, room_ids: Iterable[str], since: int) -> dict[str, list[str]]:
        """{room_id: users typing now} for every given room whose list changed after `since`."""
        if since > self._position:
            since = 0
        out: dict[str, list[str]] = {}
        for room_id in room_ids:
            if self._changed_at.get(room_id, 0) > since:
                out[room_id] = sorted(self._typing.get(room_id, {}))
        return out

    def typing_in(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, {}))

    def close(self) -> None:
        """Cancel every timer (server shutdown)."""
        for users in self._typing.values():
            for handle in users.values():
                handle.cancel()
        self._typing.clear()
        for task in self._tasks:
            task.cancel()

    # --- internals ---------------------------------------------------------------------------

    async def _announce(self, room_id: str, user_id: str, typing: bool, changed: bool) -> None:
        """Tell the room's other servers: on a change, and while typing, now and then."""
        if self._edus is None:
            return
        key = (room_id, user_id)
        now = time.monotonic()
        if typing:
            if not changed and now - self._announced.get(key, 0.0) < REMOTE_PING_MS / 1000:
                return
            self._announced[key] = now
        elif self._announced.pop(key, None) is None and not changed:
            return
        try:
            await self._edus.typing(room_id, user_id, typing)
        except Exception:  # federation trouble never fails the local request
            log.exception("cannot queue m.typing for %s in %s", user_id, room_id)

    def _start(self, room_id: str, user_id: str, timeout_ms: int, members: Iterable[str]) -> bool:
        users = self._typing.setdefault(room_id, {})
        previous = users.get(user_id)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        users[user_id] = loop.call_later(timeout_ms / 1000, self._expire, room_id, user_id)
        if previous is None:  # a renewed timer is no news to anyone
            self._changed(room_id, members)
        return previous is None

    def _stop(self, room_id: str, user_id: str, members: Iterable[str]) -> bool:
        users = self._typing.get(room_id, {})
        handle = users.pop(user_id, None)
        if handle is None:
            return False
        handle.cancel()
        if not users:
            self._typing.pop(room_id, None)
        self._changed(room_id, members)
        return True

    def _changed(self, room_id: str, members: Iterable[str]) -> None:
        self._position += 1
        self._changed_at[room_id] = self._position
        self._notifier.notify(members)
        if self.on_change is not None:
            self.on_change(room_id, sorted(self._typing.get(room_id, {})), list(members))

    def _expire(self, room_id: str, user_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._expire_async(room_id, user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire_async(self, room_id: str, user_id: str) -> None:
        users = self._typing.get(room_id, {})
        handle = users.get(user_id)
        if handle is None:
            return
        # Remove at once (before the members read) so the list never shows an expired user.
        users.pop(user_id)
        if not users:
            self._typing.pop(room_id, None)
        self._changed(room_id, await self._members(room_id))
        await self._announce(room_id, user_id, False, True)

    async def _members(self, room_id: str) -> list[str]:
        return await self._storage.db.read(
            lambda conn: state_table.select_members(conn, room_id, "join")
        )
