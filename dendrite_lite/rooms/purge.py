"""Purging a room's history (Synapse's admin docs/admin_api/purge_history_api.md): the
events before a point go, in the background; storage/purge.py says what is kept (state,
local users' events unless asked, the forward extremities) and how backfill can bring them back.

The point is an event of the room (it stays, with every event at its depth) or a time (the first
timeline event at or after it). Errors in the request answer at once; the purge itself is
watched through its purge id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.admin_tasks import AdminTask, AdminTasks
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import purge as purge_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage.purge import PurgeCounts

__all__ = ["HistoryPurges"]

# SQLite's largest integer: a later time cannot be compared with stored ones.
_MAX_TS = 2**63 - 1


class HistoryPurges:
    def __init__(
        self,
        storage: Storage,
        server_name: str,
        *,
        room_lock: Callable[[str], asyncio.Lock],
        tasks: AdminTasks,
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._room_lock = room_lock
        self._tasks = tasks

    async def start(
        self,
        room_id: str,
        *,
        event_id: str | None,
        ts: int | None,
        delete_local_events: bool,
    ) -> str:
        """POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]: the purge id."""
        if ts is not None and not 0 <= ts <= _MAX_TS:
            raise MatrixError(
                Errcode.INVALID_PARAM, f"purge_up_to_ts must be from 0 to {_MAX_TS}"
            )
        depth = await self._storage.db.read(
            lambda c: _purge_depth(c, room_id, event_id, ts)
        )

        async def job(_: AdminTask) -> None:
            await self.purge(room_id, depth, delete_local_events=delete_local_events)

        return self._tasks.start(room_id, job).task_id

    async def purge(
        self, room_id: str, depth: int, *, delete_local_events: bool
    ) -> PurgeCounts:
        """Purge below `depth` now, holding the room's lock so no event is added meanwhile."""
        async with self._room_lock(room_id):
            return await self._storage.db.write(
                lambda c: purge_table.purge_history(
                    c,
                    room_id,
                    below_depth=depth,
                    server_name=self._server_name,
                    delete_local_events=delete_local_events,
                )
            )

    async def close(self) -> None:
        """Stop the jobs still running (at shutdown, before storage closes)."""
        await self._tasks.close()

    def status(self, purge_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/purge_history_status/{purgeId}"""
        task = self._tasks.get(purge_id)
        if task is None:
            raise MatrixError(Errcode.NOT_FOUND, f"purge id {purge_id!r} not found")
        body: dict[str, Any] = {"status": task.status}
        if task.error is not None:
            body["error"] = task.error
        return body


async def _purge_depth(
    conn: aiosqlite.Connection, room_id: str, event_id: str | None, ts: int | None
) -> int:
    """The depth below which events go: the event's, or the first event's at or after `ts`
    (the newest forward extremity's when none is: everything but the room's last events)."""
    if await rooms_table.select_room(conn, room_id) is None:
        raise MatrixError(Errcode.NOT_FOUND, f"Room {room_id} not found")
    if event_id is not None:
        stored = await events_table.select_event(conn, event_id)
        if stored is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Event {event_id} not found")
        if stored.event.room_id != room_id:
            raise MatrixError(
                Errcode.INVALID_PARAM, f"Event {event_id} is not in room {room_id}"
            )
        return stored.event.depth
    if ts is None:
        raise MatrixError(
            Errcode.MISSING_PARAM,
            "Give purge_up_to_event_id or purge_up_to_ts (or an event id)",
        )
    found = await history_table.select_event_near_ts(conn, room_id, ts, forwards=True)
    if found is not None:
        return found.event.depth
    extremities = await events_table.select_forward_extremities(conn, room_id)
    return max((depth for _, depth in extremities), default=0)
