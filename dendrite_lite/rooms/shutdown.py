"""Deleting (shutting down) a room as a server admin (Synapse's admin API rooms.md, Delete Room
API, v1 synchronous and v2 in the background):

1. block the room if asked (its id stays blocked even once nothing of it is held);
2. with `new_room_user_id`, create a notice room as that user (public, named `room_name`,
   everyone else at power -10 so they cannot answer) and post `message` in it;
3. every local user in the room (joined, or invited) leaves it; with a notice room the joined
   ones are invited to it and join it;
4. the room's local aliases move to the notice room (or are deleted) and it leaves the public
   room directory;
5. with `purge` (the default), everything held of the room is deleted from the database, unless
   a local user is still joined (a leave that failed) and `force_purge` is not set.
Users of other servers are not ours to move: they stay in the room on their servers."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.request_body import optional_field
from dendrite_lite.rooms.admin import require_room_id
from dendrite_lite.rooms.admin_tasks import AdminTask, AdminTasks
from dendrite_lite.rooms.creation import parse_create_room
from dendrite_lite.rooms.membership import MembershipService
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import aliases as aliases_table
from dendrite_lite.storage import blocked_rooms as blocked_table
from dendrite_lite.storage import purge as purge_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table

__all__ = ["RoomShutdown", "ShutdownRequest", "parse_shutdown"]

log = logging.getLogger(__name__)

DEFAULT_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation will be"
    " blocked."
)


@dataclass(frozen=True, slots=True)
class ShutdownRequest:
    new_room_user_id: str | None = None
    room_name: str = DEFAULT_ROOM_NAME
    message: str = DEFAULT_MESSAGE
    block: bool = False
    purge: bool = True
    force_purge: bool = False


def parse_shutdown(body: Mapping[str, Any], server_name: str) -> ShutdownRequest:
    """The DELETE body (400 M_BAD_JSON for a wrong type, M_INVALID_PARAM for a user of
    another server)."""
    user = optional_field(body, "new_room_user_id", "string")
    if user is not None and (
        not is_valid_user_id(user) or server_name_of(user) != server_name
    ):
        raise MatrixError(
            Errcode.INVALID_PARAM, "new_room_user_id must be a user of this server"
        )

    def flag(key: str, default: bool) -> bool:
        value = optional_field(body, key, "boolean")
        return default if value is None else bool(value)

    return ShutdownRequest(
        new_room_user_id=user,
        room_name=optional_field(body, "room_name", "string") or DEFAULT_ROOM_NAME,
        message=optional_field(body, "message", "string") or DEFAULT_MESSAGE,
        block=flag("block", False),
        purge=flag("purge", True),
        force_purge=flag("force_purge", False),
    )


def _empty_result() -> dict[str, Any]:
    return {
        "kicked_users": [],
        "failed_to_kick_users": [],
        "local_aliases": [],
        "new_room_id": None,
    }


class RoomShutdown:
    def __init__(
        self,
        storage: Storage,
        server_name: str,
        *,
        pipeline: RoomPipeline,
        membership: Callable[[], MembershipService],
        tasks: AdminTasks,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._pipeline = pipeline
        self._membership = membership
        self._tasks = tasks
        self._clock = clock
        # One deletion of a room at a time: a second request waits for the first (v1).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def _known(self, room_id: str) -> bool:
        return (
            await self._storage.db.read(lambda c: rooms_table.select_room(c, room_id))
            is not None
        )

    async def delete_now(
        self, room_id: str, req: ShutdownRequest, admin: str
    ) -> dict[str, Any]:
        """DELETE /_synapse/admin/v1/rooms/{roomId}: the shutdown's result once done. An unknown
        room can only be blocked (400 otherwise)."""
        require_room_id(room_id)
        if not await self._known(room_id):
            if not req.block:
                raise MatrixError(Errcode.INVALID_PARAM, f"Unknown room {room_id}")
            await self._block(room_id, admin)
            return _empty_result()
        result = _empty_result()
        await self._delete(room_id, req, admin, result)
        return result

    async def start(self, room_id: str, req: ShutdownRequest, admin: str) -> str:
        """DELETE /_synapse/admin/v2/rooms/{roomId}: the delete id (404 for an unknown room)."""
        require_room_id(room_id)
        if not await self._known(room_id):
            raise MatrixError(Errcode.NOT_FOUND, f"Unknown room {room_id}")

        async def job(task: AdminTask) -> None:
            task.result.update(_empty_result())
            await self._delete(room_id, req, admin, task.result)

        return self._tasks.start(room_id, job).task_id

    async def close(self) -> None:
        """Stop the jobs still running (at shutdown, before storage closes)."""
        await self._tasks.close()

    def status(self, delete_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v2/rooms/delete_status/{deleteId}"""
        task = self._tasks.get(delete_id)
        if task is None:
            raise MatrixError(Errcode.NOT_FOUND, f"delete id {delete_id!r} not found")
        return _status(task)

    def statuses(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v2/rooms/{roomId}/delete_status (404 when none is known)."""
        tasks = self._tasks.for_room(room_id)
        if not tasks:
            raise MatrixError(Errcode.NOT_FOUND, f"No deletion of {room_id} is known")
        return {"results": [_status(t) for t in tasks]}

    # --- the steps -------------------------------------------------------------------------
    async def _delete(
        self, room_id: str, req: ShutdownRequest, admin: str, result: dict[str, Any]
    ) -> None:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        async with lock:
            if req.block:
                await self._block(room_id, admin)
            new_room = await self._notice_room(req) if req.new_room_user_id else None
            result["new_room_id"] = new_room
            await self._move_members(room_id, req, new_room, result)
            result["local_aliases"] = await self._retire_aliases(room_id, new_room)
            if req.purge:
                await self._purge(room_id, req.force_purge)

    async def _block(self, room_id: str, admin: str) -> None:
        now = int(self._clock() * 1000)
        await self._storage.db.write(
            lambda c: blocked_table.insert_blocked_room(c, room_id, admin, now)
        )

    async def _notice_room(self, req: ShutdownRequest) -> str:
        creator = req.new_room_user_id
        assert creator is not None
        request = parse_create_room(
            {
                "preset": "public_chat",
                "name": req.room_name,
                "power_level_content_override": {"users_default": -10},
            }
        )
        room_id, _ = await self._membership().create_room(creator, request)
        content = {"msgtype": "m.text", "body": req.message}
        await self._pipeline.send(
            room_id, EventSpec(creator, "m.room.message", content)
        )
        return room_id

    async def _move_members(
        self,
        room_id: str,
        req: ShutdownRequest,
        new_room: str | None,
        result: dict[str, Any],
    ) -> None:
        membership = self._membership()
        for user_id, was in await self._local_members(room_id):
            try:
                # Not forgotten for them (Synapse does): their next /sync must show the leave,
                # or their clients keep showing the room as joined.
                await membership.leave(user_id, room_id)
            except MatrixError as e:
                log.warning(
                    "deleting %s: %s could not leave: %s %s",
                    room_id,
                    user_id,
                    e.errcode,
                    e.error,
                )
                result["failed_to_kick_users"].append(user_id)
                continue
            result["kicked_users"].append(user_id)
            if new_room is None or was != "join" or user_id == req.new_room_user_id:
                continue
            try:
                assert req.new_room_user_id is not None
                await membership.invite(req.new_room_user_id, new_room, user_id)
                await membership.join(user_id, new_room)
            except MatrixError as e:  # the user is out of the old room all the same
                log.warning(
                    "deleting %s: %s not moved to %s: %s",
                    room_id,
                    user_id,
                    new_room,
                    e.error,
                )

    async def _local_members(self, room_id: str) -> list[tuple[str, str]]:
        """(user id, membership) of our users joined to or invited into the room."""
        suffix = ":" + self._server_name

        async def read(conn: aiosqlite.Connection) -> list[tuple[str, str]]:
            out = []
            # Invites first: rejecting one goes through the room while our users are still in it.
            for membership in ("invite", "join"):
                members = await state_table.select_members(conn, room_id, membership)
                out += [(m, membership) for m in members if m.endswith(suffix)]
            return out

        return await self._storage.db.read(read)

    async def _retire_aliases(self, room_id: str, new_room: str | None) -> list[str]:
        """The room's local aliases, now pointing at the notice room (or gone); the room
        leaves the public directory."""

        async def write(conn: aiosqlite.Connection) -> list[str]:
            aliases = await aliases_table.select_aliases_for_room(conn, room_id)
            if new_room is not None:
                await aliases_table.update_aliases_room(conn, room_id, new_room)
            else:
                for alias in aliases:
                    await aliases_table.delete_alias(conn, alias)
            await rooms_table.update_room_public(conn, room_id, False)
            return aliases

        return await self._storage.db.write(write)

    async def _purge(self, room_id: str, force: bool) -> None:
        if not force and any(
            m == "join" for _, m in await self._local_members(room_id)
        ):
            raise MatrixError(
                Errcode.UNKNOWN,
                f"Local users are still in {room_id}; not purging it",
                status=400,
            )
        async with self._pipeline.room_lock(room_id):
            await self._storage.db.write(lambda c: purge_table.delete_room(c, room_id))


def _status(task: AdminTask) -> dict[str, Any]:
    body: dict[str, Any] = {
        "delete_id": task.task_id,
        "room_id": task.room_id,
        "status": task.status,
        "shutdown_room": {**_empty_result(), **task.result},
    }
    if task.error is not None:
        body["error"] = task.error
    return body
