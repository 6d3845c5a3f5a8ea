"""The server admin's view of rooms (Synapse's admin API, docs/admin_api/rooms.md): the room
list with search, order and paging, a room's details, members, state and messages, blocking,
and making a user a room admin. Any room this server holds, whoever asks: the handlers check
that the requester is a server admin (or on the admin socket) first."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.rooms.access import MEMBER, RoomSnapshot, load_current
from dendrite_lite.rooms.admin_history import AdminHistory, found_room
from dendrite_lite.rooms.aliases import resolve_alias
from dendrite_lite.rooms.membership import MembershipService
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.rooms.room_events import client_events
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import blocked_rooms as blocked_table
from dendrite_lite.storage import room_stats as stats_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.room_stats import ORDERS, RoomQuery, RoomStats

__all__ = ["RoomAdmin", "parse_room_query", "require_room_id"]

POWER_LEVELS = "m.room.power_levels"
# Old names rooms.md still accepts.
_DEPRECATED_ORDERS = {"alphabetical": "name", "size": "joined_members"}


def parse_room_query(
    order_by: str | None,
    direction: str | None,
    search_term: str | None,
    public_rooms: bool | None = None,
    empty_rooms: bool | None = None,
) -> RoomQuery:
    """The room list's order and filters (400 M_INVALID_PARAM for an unknown order or dir)."""
    order = _DEPRECATED_ORDERS.get(order_by or "name", order_by or "name")
    if order not in ORDERS:
        allowed = ", ".join([*ORDERS, *_DEPRECATED_ORDERS])
        raise MatrixError(Errcode.INVALID_PARAM, f"order_by must be one of {allowed}")
    if direction not in (None, "f", "b"):
        raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'f' or 'b'")
    return RoomQuery(
        order, direction == "b", search_term or None, public_rooms, empty_rooms
    )


def _listed(room: RoomStats) -> dict[str, Any]:
    return {
        "room_id": room.room_id,
        "name": room.name,
        "canonical_alias": room.canonical_alias,
        "joined_members": room.joined_members,
        "joined_local_members": room.joined_local_members,
        "version": room.version,
        "creator": room.creator,
        "encryption": room.encryption,
        "federatable": room.federatable,
        "public": room.public,
        "join_rules": room.join_rules,
        "guest_access": room.guest_access,
        "history_visibility": room.history_visibility,
        "state_events": room.state_events,
        "room_type": room.room_type,
    }


class RoomAdmin:
    def __init__(
        self,
        storage: Storage,
        server_name: str,
        *,
        pipeline: RoomPipeline,
        membership: Callable[[], MembershipService],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._pipeline = pipeline
        self._membership = membership
        self._clock = clock
        # Messages, context and timestamp lookups of any room (rooms/admin_history.py).
        self.history = AdminHistory(storage, clock=clock)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- reads -----------------------------------------------------------------------------
    async def list_rooms(
        self, query: RoomQuery, offset: int, limit: int
    ) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms: {rooms, offset, total_rooms[, next_batch, prev_batch]}."""
        if offset < 0 or limit < 0:
            raise MatrixError(
                Errcode.INVALID_PARAM, "from and limit must not be negative"
            )
        name = self._server_name

        async def read(conn: aiosqlite.Connection) -> tuple[list[RoomStats], int]:
            rooms = await stats_table.select_room_stats(
                conn, name, query, offset=offset, limit=limit
            )
            return rooms, await stats_table.count_room_stats(conn, name, query)

        rooms, total = await self._storage.db.read(read)
        body: dict[str, Any] = {
            "rooms": [_listed(r) for r in rooms],
            "offset": offset,
            "total_rooms": total,
        }
        if offset + len(rooms) < total:
            body["next_batch"] = offset + len(rooms)
        if offset > 0:
            body["prev_batch"] = max(0, offset - limit)
        return body

    async def details(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}"""
        name = self._server_name

        async def read(conn: aiosqlite.Connection) -> dict[str, Any] | None:
            room = await stats_table.select_one_room_stats(conn, name, room_id)
            if room is None:
                return None
            return {
                **_listed(room),
                "topic": room.topic,
                "avatar": room.avatar,
                "joined_local_devices": await stats_table.select_joined_local_devices(
                    conn, room_id
                ),
                "forgotten": await stats_table.select_all_local_forgot(
                    conn, name, room_id
                ),
            }

        return found_room(await self._storage.db.read(read), room_id)

    async def members(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}/members: the joined members."""

        async def read(conn: aiosqlite.Connection) -> list[str] | None:
            if await rooms_table.select_room(conn, room_id) is None:
                return None
            return await state_table.select_members(conn, room_id, "join")

        members = found_room(await self._storage.db.read(read), room_id)
        return {"members": members, "total": len(members)}

    async def state(self, room_id: str, event_type: str | None) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}/state[?type=]"""
        room = await load_current(self._storage, room_id, None)
        ids = [
            i
            for (t, _), i in sorted(room.state.items())
            if event_type is None or t == event_type
        ]
        stored = [room.events[i] for i in ids if i in room.events]
        return {"state": await client_events(self._storage, stored)}

    # --- blocking --------------------------------------------------------------------------
    async def block_status(self, room_id: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/rooms/{roomId}/block"""
        blocker = await self._storage.db.read(
            lambda c: blocked_table.select_room_blocker(c, room_id)
        )
        if blocker is None:
            return {"block": False}
        # Blocked on the admin socket: no user did it.
        return {"block": True, "user_id": blocker} if blocker else {"block": True}

    async def set_blocked(
        self, room_id: str, block: bool, admin: str
    ) -> dict[str, Any]:
        """PUT /_synapse/admin/v1/rooms/{roomId}/block: rooms this server does not know may be
        blocked too (before anyone joins them)."""
        require_room_id(room_id)
        now = self._now_ms()

        async def write(conn: aiosqlite.Connection) -> None:
            if block:
                await blocked_table.insert_blocked_room(conn, room_id, admin, now)
            else:
                await blocked_table.delete_blocked_room(conn, room_id)

        await self._storage.db.write(write)
        return {"block": block}

    # --- make room admin -------------------------------------------------------------------
    async def make_room_admin(self, room_id_or_alias: str, user_id: str) -> None:
        """POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin: the local member
        with the most power (who may change the power levels) gives `user_id` that power;
        a user not in a room they cannot join freely is invited first."""
        if (
            not is_valid_user_id(user_id)
            or server_name_of(user_id) != self._server_name
        ):
            raise MatrixError(
                Errcode.INVALID_PARAM, "user_id must be a user of this server"
            )
        room_id = room_id_or_alias
        if room_id_or_alias.startswith("#"):
            room_id, _ = await resolve_alias(
                self._storage, server_name=self._server_name, alias=room_id_or_alias
            )
        room = await load_current(self._storage, room_id, None)
        granter, level = self._most_powerful_local(room)
        if granter is None or level < room.required_level(POWER_LEVELS, ""):
            raise MatrixError(
                Errcode.UNKNOWN,
                "No local member may change this room's power levels",
                status=400,
            )
        membership = room.membership(user_id)
        join_rule = _content(room, "m.room.join_rules").get("join_rule")
        if membership not in ("join", "invite") and join_rule != "public":
            await self._membership().invite(granter, room_id, user_id)
        if room.power_level(user_id) >= level:
            return
        power = _content(room, POWER_LEVELS)
        users = dict(power.get("users") or {})
        users[user_id] = _finite(level, power)
        await self._pipeline.send(
            room_id, EventSpec(granter, POWER_LEVELS, {**power, "users": users}, "")
        )

    # --- joining a user --------------------------------------------------------------------
    async def join_user(self, room_id_or_alias: str, user_id: str, admin: str) -> str:
        """POST /_synapse/admin/v1/join/{roomIdOrAlias}: `user_id` (ours) joins the room; into
        a room they may not join freely they are invited first, by the admin if joined with
        the power to invite, else by the most powerful local member who has it (on the admin
        socket there is no admin user). Answers the room id."""
        if (
            not is_valid_user_id(user_id)
            or server_name_of(user_id) != self._server_name
        ):
            raise MatrixError(
                Errcode.INVALID_PARAM, "user_id must be a user of this server"
            )
        account = await self._storage.db.read(
            lambda c: accounts_table.select_account(c, user_id)
        )
        if account is None or account.deactivated:
            raise MatrixError(Errcode.NOT_FOUND, f"User {user_id} not found")
        room_id = room_id_or_alias
        if (
            room_id_or_alias.startswith("#")
            and server_name_of(room_id_or_alias) == self._server_name
        ):
            room_id, _ = await resolve_alias(
                self._storage, server_name=self._server_name, alias=room_id_or_alias
            )
        membership = self._membership()
        if room_id.startswith("!") and await self._resident(room_id):
            room = await load_current(self._storage, room_id, None)
            if room.membership(user_id) == "join":
                return room_id
            join_rule = _content(room, "m.room.join_rules").get("join_rule")
            if join_rule != "public" and room.membership(user_id) != "invite":
                await membership.invite(self._inviter(room, admin), room_id, user_id)
        return await membership.join(user_id, room_id)

    async def _resident(self, room_id: str) -> bool:
        """Whether a local user is joined to the room (we can change it ourselves)."""
        suffix = ":" + self._server_name
        joined = await self._storage.db.read(
            lambda c: state_table.select_members(c, room_id, "join")
        )
        return any(m.endswith(suffix) for m in joined)

    def _inviter(self, room: RoomSnapshot, admin: str) -> str:
        needed = room.named_level("invite")
        if (
            admin
            and room.membership(admin) == "join"
            and room.power_level(admin) >= needed
        ):
            return admin
        inviter, level = self._most_powerful_local(room)
        if inviter is None or level < needed:
            raise MatrixError(
                Errcode.FORBIDDEN, "No local member may invite into this room"
            )
        return inviter

    def _most_powerful_local(self, room: RoomSnapshot) -> tuple[str | None, float]:
        best: tuple[str | None, float] = (None, float("-inf"))
        suffix = ":" + self._server_name
        for (event_type, member), event_id in sorted(room.state.items()):
            stored = room.events.get(event_id)
            if event_type != MEMBER or not member.endswith(suffix) or stored is None:
                continue
            if stored.event.membership != "join":
                continue
            level = room.power_level(member)
            if level > best[1]:
                best = (member, level)
        return best


def _content(room: RoomSnapshot, event_type: str) -> dict[str, Any]:
    event = room.get(event_type)
    return dict(event.content) if event is not None else {}


def _finite(level: float, power: dict[str, Any]) -> int:
    """A level to give: a room creator's (unbounded since room version 12) becomes the highest
    level the power levels name, at least 100."""
    if level != float("inf"):
        return int(level)
    named = [v for v in (power.get("users") or {}).values() if isinstance(v, int)]
    return max([100, *named])


def require_room_id(room_id: str) -> None:
    """400 M_INVALID_PARAM unless `room_id` looks like a room id (any room version's)."""
    if not room_id.startswith("!") or len(room_id) < 2:
        raise MatrixError(Errcode.INVALID_PARAM, f"{room_id!r} is not a room id")
