"""The published room directory (client-server-api §Published room directory,
list_public_rooms.yaml): which rooms are listed, and the listing itself.

Ordered by joined member count, largest first, then room id (a stable order, as the spec
recommends). Pagination tokens are offsets ("o<n>"), which is fine at this server's scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field
from dendrite_lite.rooms.access import RoomSnapshot, history_visibility, load_current
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as appservices_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table

__all__ = [
    "PublicRoomsQuery",
    "list_public_rooms",
    "get_visibility",
    "set_visibility",
    "CHUNK_KEYS",
    "room_chunk",
    "query_from_body",
]

CHUNK_KEYS = (
    ("m.room.create", ""),
    ("m.room.name", ""),
    ("m.room.topic", ""),
    ("m.room.avatar", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.guest_access", ""),
)
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class PublicRoomsQuery:
    limit: int | None = None
    since: str | None = None
    search: str | None = None
    room_types: tuple[str | None, ...] | None = None
    # Application service room lists (appservice/room_list.py): one by its instance id
    # ("<appservice id>|<network id>") instead of the main list, or every list besides it.
    third_party_instance_id: str | None = None
    include_all_networks: bool = False


def query_from_body(body: dict[str, Any]) -> PublicRoomsQuery:
    """The POST /publicRooms body (client and federation alike), checked field by field."""
    flt = optional_field(body, "filter", "object") or {}
    search = optional_field(flt, "generic_search_term", "string", name="filter.generic_search_term")
    types = optional_field(flt, "room_types", "array", name="filter.room_types")
    if types is not None and not all(t is None or isinstance(t, str) for t in types):
        raise MatrixError(Errcode.BAD_JSON, "filter.room_types must list strings (or null)")
    return PublicRoomsQuery(
        limit=optional_field(body, "limit", "integer"),
        since=optional_field(body, "since", "string"),
        search=search,
        room_types=tuple(types) if types is not None else None,
        third_party_instance_id=optional_field(body, "third_party_instance_id", "string"),
        include_all_networks=optional_field(body, "include_all_networks", "boolean") is True,
    )


def _field(room: RoomSnapshot, event_type: str, key: str) -> Any:
    event = room.get(event_type)
    value = event.content.get(key) if event is not None else None
    return value if isinstance(value, str) and value else None


async def _chunk(storage: Storage, room_id: str) -> dict[str, Any]:
    room = await load_current(storage, room_id, CHUNK_KEYS)
    joined = await storage.db.read(lambda c: state_table.select_members(c, room_id, "join"))
    return room_chunk(room, len(joined))


def room_chunk(room: RoomSnapshot, joined: int) -> dict[str, Any]:
    """A room as the directory lists it (public_rooms_chunk.yaml); `room` has CHUNK_KEYS
    loaded. The space hierarchy adds its own fields to the same summary."""
    out: dict[str, Any] = {
        "room_id": room.room_id,
        "num_joined_members": joined,
        "world_readable": history_visibility(room) == "world_readable",
        "guest_can_join": _field(room, "m.room.guest_access", "guest_access") == "can_join",
        "join_rule": _field(room, "m.room.join_rules", "join_rule") or "invite",
    }
    for event_type, key, name in (
        ("m.room.name", "name", "name"),
        ("m.room.topic", "topic", "topic"),
        ("m.room.avatar", "url", "avatar_url"),
        ("m.room.canonical_alias", "alias", "canonical_alias"),
        ("m.room.create", "type", "room_type"),
    ):
        value = _field(room, event_type, key)
        if value is not None:
            out[name] = value
    return out


def _offset(since: str | None) -> int:
    if since is None:
        return 0
    if not since.startswith("o") or not since[1:].isdigit():
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid since token")
    return int(since[1:])


def _matches(chunk: dict[str, Any], query: PublicRoomsQuery) -> bool:
    if query.room_types is not None and chunk.get("room_type") not in query.room_types:
        return False
    if not query.search:
        return True
    term = query.search.casefold()
    fields: Sequence[Any] = (chunk.get("name"), chunk.get("topic"), chunk.get("canonical_alias"))
    return any(isinstance(f, str) and term in f.casefold() for f in fields)


async def _listed_room_ids(storage: Storage, query: PublicRoomsQuery) -> list[str]:
    instance = query.third_party_instance_id
    if instance is not None and not query.include_all_networks:
        as_id, sep, network_id = instance.partition("|")
        if not sep:
            return []
        return await storage.db.read(
            lambda c: appservices_table.select_room_list(c, [(as_id, network_id)])
        )
    room_ids = await storage.db.read(rooms_table.select_public_room_ids)
    if query.include_all_networks:
        listed = await storage.db.read(appservices_table.select_appservice_listed_rooms)
        room_ids = [*room_ids, *sorted(listed - set(room_ids))]
    return room_ids


async def list_public_rooms(storage: Storage, query: PublicRoomsQuery) -> dict[str, Any]:
    room_ids = await _listed_room_ids(storage, query)
    chunks = [await _chunk(storage, r) for r in room_ids]
    chunks = [c for c in chunks if _matches(c, query)]
    chunks.sort(key=lambda c: (-c["num_joined_members"], c["room_id"]))
    start = _offset(query.since)
    limit = min(query.limit, MAX_LIMIT) if query.limit is not None and query.limit > 0 else MAX_LIMIT
    page = chunks[start : start + limit]
    body: dict[str, Any] = {"chunk": page, "total_room_count_estimate": len(chunks)}
    if start + limit < len(chunks):
        body["next_batch"] = f"o{start + limit}"
    if start > 0:
        body["prev_batch"] = f"o{max(0, start - limit)}"
    return body


async def get_visibility(storage: Storage, room_id: str) -> str:
    room = await storage.db.read(lambda c: rooms_table.select_room(c, room_id))
    if room is None:
        raise MatrixError(Errcode.NOT_FOUND, "Room not found")
    return "public" if room.is_public else "private"


async def set_visibility(storage: Storage, *, requester: str, room_id: str, visibility: Any) -> None:
    """PUT /directory/list/room/{roomId}: joined members who may set the canonical alias."""
    if visibility not in ("public", "private"):
        raise MatrixError(Errcode.INVALID_PARAM, "visibility must be 'public' or 'private'")
    room = await load_current(storage, room_id, [("m.room.member", requester)])
    if room.membership(requester) != "join" or room.power_level(requester) < room.required_level(
        "m.room.canonical_alias", ""
    ):
        raise MatrixError(Errcode.FORBIDDEN, "You may not change this room's directory visibility")
    await storage.db.write(
        lambda c: rooms_table.update_room_public(c, room_id, visibility == "public")
    )
