"""Guests leave a room whose guest access is revoked (guest_access.md §Server behaviour: "If the
m.room.guest_access event is changed to stop this from being the case, the server MUST set those
users' m.room.member state to leave").

A persist hook shared by the local pipeline and federation ingest, so a revocation sent by another
server counts too. It only notes the room inside the transaction; the leaves are sent afterwards
by a task of their own, each guest leaving by itself (a self-leave passes every auth rule,
whatever the power levels), as Synapse does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiosqlite

from dendrite_lite.errors import MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.rooms.notifications import InTxn
from dendrite_lite.storage import Storage
from dendrite_lite.storage.accounts import select_joined_guests

__all__ = ["GUEST_ACCESS", "GuestAccessRevocation"]

log = logging.getLogger(__name__)

GUEST_ACCESS = "m.room.guest_access"
Leave = Callable[[str, str], Awaitable[None]]  # (user_id, room_id)


def _revokes(event: Event) -> bool:
    return (
        event.type == GUEST_ACCESS
        and event.state_key == ""
        and event.content.get("guest_access") != "can_join"
    )


class GuestAccessRevocation:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        # Set once the pipeline exists (it takes this hook when it is built).
        self.leave: Leave | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def prepare(self, room_id: str, events: Sequence[Event]) -> InTxn | None:
        if not any(_revokes(e) for e in events):
            return None

        async def in_txn(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            task = asyncio.get_running_loop().create_task(self._remove_guests(room_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return in_txn

    async def _remove_guests(self, room_id: str) -> None:
        if self.leave is None:
            return
        guests = await self._storage.db.read(lambda c: select_joined_guests(c, room_id))
        for guest in guests:
            try:
                await self.leave(guest, room_id)
            except MatrixError as e:
                log.warning("guest %s could not leave %s after guest access ended: %s",
                            guest, room_id, e)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
