"""Reading a room on behalf of a user: which state they may see, their membership, power.

Shared by the membership, alias, event and upgrade services so that "may this user read this
room?" has one answer: the current state if they are joined (or the room is world_readable), the
state when they left if they left, otherwise 403 (rooms.yaml: "If the user has left the room then
the state is taken from the state of the room when they left"). A banned user did not leave: as
in Synapse, they may no longer read the room (SyTest 30rooms/07ban.pl).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.power_levels import (
    event_power_level,
    named_power_level,
    user_power_level,
)
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.state import StateMap

__all__ = [
    "RoomSnapshot",
    "load_current",
    "load_readable",
    "membership_of",
    "history_visibility",
]

MEMBER = "m.room.member"


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """A room's state (ids) at one point, with the state events loaded so far."""

    room_id: str
    version: RoomVersion
    state: StateMap
    events: dict[str, StoredEvent]
    is_current: bool

    def get(self, event_type: str, state_key: str = "") -> Event | None:
        event_id = self.state.get((event_type, state_key))
        stored = self.events.get(event_id) if event_id is not None else None
        return stored.event if stored is not None else None

    def membership(self, user_id: str) -> str | None:
        member = self.get(MEMBER, user_id)
        return member.membership if member is not None else None

    def power_level(self, user_id: str) -> int | float:
        create = self.get("m.room.create")
        if create is None:  # only a broken room has no create event
            return 0
        return user_power_level(user_id, self.get("m.room.power_levels"), create)

    def required_level(self, event_type: str, state_key: str | None) -> int:
        return event_power_level(event_type, state_key, self.get("m.room.power_levels"))

    def named_level(self, name: str) -> int:
        return named_power_level(name, self.get("m.room.power_levels"))


_ALWAYS_LOADED: tuple[StateKey, ...] = (
    ("m.room.create", ""),
    ("m.room.power_levels", ""),
    ("m.room.history_visibility", ""),
    ("m.room.join_rules", ""),
)


async def _snapshot(
    conn: aiosqlite.Connection,
    room_id: str,
    version: RoomVersion,
    state: StateMap,
    keys: Iterable[StateKey] | None,
    *,
    is_current: bool,
) -> RoomSnapshot:
    wanted = state.values() if keys is None else [state[k] for k in keys if k in state]
    events = await events_table.select_events(conn, wanted)
    return RoomSnapshot(room_id, version, state, events, is_current)


async def load_current(
    storage: Storage, room_id: str, keys: Iterable[StateKey] | None = ()
) -> RoomSnapshot:
    """The current state; `keys` picks the events to load (None: all of them) on top of create,
    power levels, join rules and history visibility. Unknown room -> 404 M_NOT_FOUND."""
    extra = None if keys is None else [*_ALWAYS_LOADED, *keys]

    async def read(conn: aiosqlite.Connection) -> RoomSnapshot | None:
        room = await rooms_table.select_room(conn, room_id)
        if room is None:
            return None
        state = await state_table.select_current_state(conn, room_id)
        version = get_room_version(room.room_version)
        return await _snapshot(conn, room_id, version, state, extra, is_current=True)

    snapshot = await storage.db.read(read)
    if snapshot is None:
        raise MatrixError(Errcode.NOT_FOUND, f"Unknown room {room_id}")
    return snapshot


async def membership_of(storage: Storage, room_id: str, user_id: str) -> StoredEvent | None:
    """The user's current m.room.member event in the room, if any."""

    async def read(conn: aiosqlite.Connection) -> StoredEvent | None:
        event_id = await state_table.select_current_state_event_id(conn, room_id, MEMBER, user_id)
        return await events_table.select_event(conn, event_id) if event_id else None

    return await storage.db.read(read)


def history_visibility(snapshot: RoomSnapshot) -> str:
    event = snapshot.get("m.room.history_visibility")
    value = event.content.get("history_visibility") if event is not None else None
    return value if isinstance(value, str) else "shared"


async def load_readable(
    storage: Storage, user_id: str, room_id: str, keys: Iterable[StateKey] | None = ()
) -> RoomSnapshot:
    """The state `user_id` may read: current if joined or world_readable, at their leave event
    if they left; 403 M_FORBIDDEN otherwise (banned too), 404 for an unknown room."""
    keys = None if keys is None else [*keys, (MEMBER, user_id)]
    current = await load_current(storage, room_id, keys)
    membership = current.membership(user_id)
    if membership == "join" or history_visibility(current) == "world_readable":
        return current
    if membership == "leave":
        member_id = current.state[(MEMBER, user_id)]
        extra = None if keys is None else [*_ALWAYS_LOADED, *keys]

        async def read(conn: aiosqlite.Connection) -> RoomSnapshot:
            group = await events_table.select_state_group_of(conn, member_id)
            state = await state_table.select_state_group(conn, group) if group is not None else {}
            return await _snapshot(conn, room_id, current.version, state, extra, is_current=False)

        return await storage.db.read(read)
    raise MatrixError(Errcode.FORBIDDEN, f"{user_id} is not a member of {room_id}")

