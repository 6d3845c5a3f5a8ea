"""GET /rooms/{roomId}/hierarchy (modules/spaces.md, space_hierarchy.yaml): the space tree,
depth first, from the rooms this server holds.

- A room is listed when the user may see it (space_hierarchy.yaml `rooms`): joined or invited,
  join rule public or knock(_restricted), restricted with the user joined to an allowed room, or
  history world_readable. A room the user may not see is left out with everything below it.
- Only spaces (create event `type` m.space) have children: their m.space.child events with a
  non-empty `via` list, in the spec's order (§Ordering of children within a space).
- A child this server does not hold is skipped (TODO: ask the `via` servers over federation).
- Loops end: a room is listed once, at its first place in the walk.
- Pagination is by offset over the walk, recomputed per page (spaces here are small); the token
  carries max_depth and suggested_only so a page asked with other values is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.rooms.access import RoomSnapshot, history_visibility, load_current
from dendrite_lite.rooms.directory import CHUNK_KEYS, room_chunk
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import state as state_table

__all__ = ["SpaceHierarchy", "HierarchyQuery", "child_order_key"]

SPACE_CHILD = "m.space.child"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_MAX_DEPTH = MAX_DEPTH = 10
MAX_ROOMS = 1000  # a walk stops here, whatever the tree


@dataclass(frozen=True, slots=True)
class HierarchyQuery:
    room_id: str
    suggested_only: bool = False
    limit: int | None = None
    max_depth: int | None = None
    from_token: str | None = None


@dataclass(frozen=True, slots=True)
class _Room:
    summary: dict[str, Any]
    children: list[str]  # child room ids, in order


def child_order_key(event: Event) -> tuple[int, str, int, str]:
    """The spec's order: children with a valid `order` (at most 50 printable ASCII characters)
    by it, then the rest; ties by origin_server_ts, then room id."""
    order = event.content.get("order")
    valid = isinstance(order, str) and len(order) <= 50 and all(" " <= c <= "~" for c in order)
    return (0 if valid else 1, order if valid else "", event.origin_server_ts, event.state_key or "")


def _via(event: Event) -> bool:
    via = event.content.get("via")
    return isinstance(via, list) and any(isinstance(v, str) for v in via)


class SpaceHierarchy:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def hierarchy(self, user_id: str, query: HierarchyQuery) -> dict[str, Any]:
        """GET /_matrix/client/v1/rooms/{roomId}/hierarchy body."""
        limit = DEFAULT_LIMIT if query.limit is None else query.limit
        if limit <= 0:
            raise MatrixError(Errcode.INVALID_PARAM, "limit must be greater than zero")
        max_depth = DEFAULT_MAX_DEPTH if query.max_depth is None else query.max_depth
        if max_depth < 0:
            raise MatrixError(Errcode.INVALID_PARAM, "max_depth must not be negative")
        max_depth = min(max_depth, MAX_DEPTH)
        start = _parse_token(query.from_token, max_depth, query.suggested_only)
        memberships = await self._storage.db.read(
            lambda c: history_table.select_current_memberships(c, user_id)
        )
        joined = {r for r, m in memberships.items() if m[0] == "join"}
        root = await self._room(user_id, query.room_id, joined, query.suggested_only)
        if root is None:
            raise MatrixError(Errcode.FORBIDDEN, "You cannot view this room's hierarchy")
        rooms = await self._walk(user_id, root, joined, query.suggested_only, max_depth)
        page = rooms[start : start + min(limit, MAX_LIMIT)]
        body: dict[str, Any] = {"rooms": page}
        end = start + len(page)
        if end < len(rooms):
            body["next_batch"] = f"{end}.{max_depth}.{int(query.suggested_only)}"
        return body

    async def _walk(
        self, user_id: str, root: _Room, joined: set[str], suggested_only: bool, max_depth: int
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen = {root.summary["room_id"]}
        stack: list[tuple[_Room, int]] = [(root, 0)]
        while stack and len(out) < MAX_ROOMS:
            room, depth = stack.pop()
            out.append(room.summary)
            if depth >= max_depth:
                continue
            found: list[_Room] = []
            for child_id in room.children:
                if child_id in seen:
                    continue
                seen.add(child_id)
                child = await self._room(user_id, child_id, joined, suggested_only)
                if child is not None:
                    found.append(child)
            stack.extend((c, depth + 1) for c in reversed(found))
        return out

    async def _room(
        self, user_id: str, room_id: str, joined: set[str], suggested_only: bool
    ) -> _Room | None:
        """The room's summary and children, or None when unknown here or not visible."""
        try:
            room = await load_current(
                self._storage, room_id,
                [*CHUNK_KEYS, ("m.room.encryption", ""), ("m.room.member", user_id)],
            )
        except MatrixError:
            return None
        if not _may_see(room, user_id, joined):
            return None
        members = await self._storage.db.read(
            lambda c: state_table.select_members(c, room_id, "join")
        )
        summary = room_chunk(room, len(members))
        summary["room_version"] = room.version.identifier
        encryption = room.get("m.room.encryption")
        if encryption is not None and isinstance(encryption.content.get("algorithm"), str):
            summary["encryption"] = encryption.content["algorithm"]
        allowed = _allowed_rooms(room)
        if allowed:
            summary["allowed_room_ids"] = allowed
        children = await self._children(room, suggested_only) if summary.get("room_type") == "m.space" else []
        summary["children_state"] = [_stripped_child(e) for e in children]
        return _Room(summary, [e.state_key or "" for e in children])

    async def _children(self, room: RoomSnapshot, suggested_only: bool) -> list[Event]:
        ids = [i for (t, _), i in room.state.items() if t == SPACE_CHILD]
        loaded = await self._storage.db.read(lambda c: events_table.select_events(c, ids))
        events = [
            s.event for s in loaded.values()
            if _via(s.event) and (not suggested_only or s.event.content.get("suggested") is True)
        ]
        return sorted(events, key=child_order_key)


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


def _may_see(room: RoomSnapshot, user_id: str, joined: set[str]) -> bool:
    membership = room.membership(user_id)
    if membership in ("join", "invite"):
        return True
    if membership == "ban":
        return False
    rule = _join_rule(room)
    if rule in ("public", "knock", "knock_restricted"):
        return True
    if rule == "restricted" and any(r in joined for r in _allowed_rooms(room)):
        return True
    return history_visibility(room) == "world_readable"


def _stripped_child(event: Event) -> dict[str, Any]:
    return {
        "type": event.type, "state_key": event.state_key, "sender": event.sender,
        "content": dict(event.content), "origin_server_ts": event.origin_server_ts,
    }


def _parse_token(token: str | None, max_depth: int, suggested_only: bool) -> int:
    if token is None:
        return 0
    parts: Sequence[str] = token.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise MatrixError(Errcode.INVALID_PARAM, "Unknown pagination token")
    if int(parts[1]) != max_depth or int(parts[2]) != int(suggested_only):
        raise MatrixError(
            Errcode.INVALID_PARAM, "suggested_only and max_depth cannot change during pagination"
        )
    return int(parts[0])
