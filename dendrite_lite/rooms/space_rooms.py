"""One room of a space hierarchy (modules/spaces.md): its summary, its children, and whether a
user or another server may see it. Used by rooms.hierarchy for the client walk and for the
federation endpoint; summaries from other servers come through `remote_room`.

Who may see a room (space_hierarchy.yaml `rooms`; the federation version asks the same of the
requesting server's users):
- a user: joined or invited (never when banned), join rule public, knock or knock_restricted,
  restricted with the user joined to an allowed room, or history world_readable;
- a server: one of its users joined or invited, the same join rules (restricted: one of its
  users joined to an allowed room), or world_readable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.access import RoomSnapshot, history_visibility, load_current
from dendrite_lite.rooms.directory import CHUNK_KEYS, room_chunk
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import state as state_table

__all__ = [
    "SpaceRoom",
    "UserViewer",
    "ServerViewer",
    "Viewer",
    "load_space_room",
    "remote_room",
    "visible_summary",
    "child_order_key",
]

SPACE_CHILD = "m.space.child"
MEMBER = "m.room.member"
_OPEN_RULES = ("public", "knock", "knock_restricted")
# The summary fields passed on from another server's answer (room_summary.yaml and the
# hierarchy's own), nothing else.
_SUMMARY_KEYS = (
    "room_id", "name", "topic", "avatar_url", "canonical_alias", "num_joined_members",
    "world_readable", "guest_can_join", "join_rule", "room_type", "room_version", "encryption",
    "allowed_room_ids", "children_state",
)


@dataclass(frozen=True, slots=True)
class SpaceRoom:
    summary: dict[str, Any]
    children: list[tuple[str, list[str]]] = field(default_factory=list)  # (room id, via), in order


@dataclass(frozen=True, slots=True)
class UserViewer:
    user_id: str
    joined: frozenset[str]  # rooms the user is joined to (restricted join rules)


@dataclass(frozen=True, slots=True)
class ServerViewer:
    server_name: str


Viewer = UserViewer | ServerViewer


def child_order_key(content: Mapping[str, Any], ts: Any, room_id: str) -> tuple[int, str, int, str]:
    """The spec's order (§Ordering of children within a space): a valid `order` (at most 50
    printable ASCII characters) first, by it; then by origin_server_ts; then by room id."""
    order = content.get("order")
    valid = isinstance(order, str) and len(order) <= 50 and all(" " <= c <= "~" for c in order)
    return (0 if valid else 1, order if valid else "", ts if isinstance(ts, int) else 0, room_id)


def _child_via(content: Mapping[str, Any], suggested_only: bool) -> list[str] | None:
    """The child's via servers, None when the link is void (no via) or not wanted."""
    via = content.get("via")
    servers = [v for v in via if isinstance(v, str)] if isinstance(via, list) else []
    if not servers or (suggested_only and content.get("suggested") is not True):
        return None
    return servers


async def load_space_room(
    storage: Storage, room_id: str, viewer: Viewer, suggested_only: bool
) -> tuple[SpaceRoom, bool] | None:
    """(the room, whether `viewer` may see it); None when this server does not hold it."""
    user = viewer.user_id if isinstance(viewer, UserViewer) else None
    keys = [*CHUNK_KEYS, ("m.room.encryption", "")] + ([(MEMBER, user)] if user else [])
    try:
        room = await load_current(storage, room_id, keys)
    except MatrixError:
        return None
    visible = await storage.db.read(lambda conn: _may_see(conn, room, viewer))
    members = await storage.db.read(lambda c: state_table.select_members(c, room_id, "join"))
    summary = room_chunk(room, len(members))
    summary["room_version"] = room.version.identifier
    encryption = room.get("m.room.encryption")
    if encryption is not None and isinstance(encryption.content.get("algorithm"), str):
        summary["encryption"] = encryption.content["algorithm"]
    if allowed := _allowed_rooms(room):
        summary["allowed_room_ids"] = allowed
    state: list[dict[str, Any]] = []
    if summary.get("room_type") == "m.space":
        state = await storage.db.read(lambda conn: _children_state(conn, room))
    summary["children_state"] = state
    return SpaceRoom(summary, _children(state, suggested_only)), visible


async def _children_state(conn: aiosqlite.Connection, room: RoomSnapshot) -> list[dict[str, Any]]:
    """The space's m.space.child events with a via list, stripped, in the spec's order."""
    ids = [i for (t, _), i in room.state.items() if t == SPACE_CHILD]
    loaded = await events_table.select_events(conn, ids)
    out = [
        {"type": e.type, "state_key": e.state_key, "sender": e.sender,
         "content": dict(e.content), "origin_server_ts": e.origin_server_ts}
        for e in (s.event for s in loaded.values())
        if _child_via(e.content, False) is not None
    ]
    return sorted(out, key=lambda c: child_order_key(c["content"], c["origin_server_ts"], c["state_key"]))


def _children(state: Sequence[Any], suggested_only: bool) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for c in state:
        if not isinstance(c, dict) or not isinstance(c.get("state_key"), str):
            continue
        content = c.get("content")
        via = _child_via(content, suggested_only) if isinstance(content, dict) else None
        if via is not None:
            out.append((c["state_key"], via))
    return out


def remote_room(summary: Any, suggested_only: bool) -> SpaceRoom | None:
    """A room summary from another server's hierarchy answer, kept to the known fields."""
    if not isinstance(summary, dict) or not isinstance(summary.get("room_id"), str):
        return None
    kept = {k: summary[k] for k in _SUMMARY_KEYS if k in summary}
    state = kept.get("children_state")
    kept["children_state"] = state = state if isinstance(state, list) else []
    ordered = sorted(
        (c for c in state if isinstance(c, dict) and isinstance(c.get("content"), dict)
         and isinstance(c.get("state_key"), str)),
        key=lambda c: child_order_key(c["content"], c.get("origin_server_ts"), c["state_key"]),
    )
    return SpaceRoom(kept, _children(ordered, suggested_only))


def visible_summary(summary: Mapping[str, Any], joined: frozenset[str]) -> bool:
    """Whether a user may see a room held elsewhere, from its summary alone."""
    rule = summary.get("join_rule")
    if rule in _OPEN_RULES or summary.get("world_readable") is True:
        return True
    allowed = summary.get("allowed_room_ids")
    return rule == "restricted" and isinstance(allowed, list) and any(r in joined for r in allowed)


def _join_rule(room: RoomSnapshot) -> str | None:
    event = room.get("m.room.join_rules")
    rule = event.content.get("join_rule") if event is not None else None
    return rule if isinstance(rule, str) else None


def _allowed_rooms(room: RoomSnapshot) -> list[str]:
    if _join_rule(room) not in ("restricted", "knock_restricted"):
        return []
    event = room.get("m.room.join_rules")
    allow = event.content.get("allow") if event is not None else None
    return [
        a["room_id"] for a in allow if isinstance(a, dict)
        and a.get("type") == "m.room_membership" and isinstance(a.get("room_id"), str)
    ] if isinstance(allow, list) else []


async def _may_see(conn: aiosqlite.Connection, room: RoomSnapshot, viewer: Viewer) -> bool:
    if isinstance(viewer, UserViewer):
        membership = room.membership(viewer.user_id)
        if membership in ("join", "invite"):
            return True
        if membership == "ban":
            return False
        in_allowed = any(r in viewer.joined for r in _allowed_rooms(room))
    else:
        server = viewer.server_name
        if await state_table.select_server_is_member(conn, room.room_id, server, ("join", "invite")):
            return True
        in_allowed = False
        for allowed in _allowed_rooms(room):
            in_allowed = in_allowed or await state_table.select_server_is_member(
                conn, allowed, server, ("join",)
            )
    rule = _join_rule(room)
    if rule in _OPEN_RULES or (rule == "restricted" and in_allowed):
        return True
    return history_visibility(room) == "world_readable"
