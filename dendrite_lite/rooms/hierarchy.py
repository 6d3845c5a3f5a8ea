"""The space hierarchy (modules/spaces.md): GET /v1/rooms/{roomId}/hierarchy for our users and
GET /_matrix/federation/v1/hierarchy/{roomId} for other servers.

The client walk, depth first:
- a room is listed when the user may see it (rooms.space_rooms); one they may not see is left
  out with everything below it;
- only spaces have children: their m.space.child events with a via list, in the spec's order;
- a child this server does not hold is asked of its `via` servers over federation
  (`fetch_remote`); their answer also carries that room's children, kept for the rest of the
  walk, and the rooms they call inaccessible are not asked again (the spec: "should not be
  re-requested"); an unreachable server leaves the room out, it does not fail the walk;
- loops end: a room is listed once, at its first place in the walk;
- pagination is by offset over the walk, recomputed per page (spaces here are small); the token
  carries max_depth and suggested_only so a page asked with other values is refused.
The root must be held here (the endpoint has no via to ask).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.space_rooms import (
    ServerViewer,
    SpaceRoom,
    UserViewer,
    load_space_room,
    remote_room,
    visible_summary,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import history as history_table

__all__ = ["SpaceHierarchy", "HierarchyQuery", "FetchRemote"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DEFAULT_MAX_DEPTH = MAX_DEPTH = 10
MAX_ROOMS = 1000  # a walk stops here, whatever the tree
# (room id, via servers, suggested_only) -> another server's federation hierarchy answer, or
# None when none of them gave one.
FetchRemote = Callable[[str, Sequence[str], bool], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class HierarchyQuery:
    room_id: str
    suggested_only: bool = False
    limit: int | None = None
    max_depth: int | None = None
    from_token: str | None = None


@dataclass(slots=True)
class _Walk:
    viewer: UserViewer
    suggested_only: bool
    remote: dict[str, SpaceRoom] = field(default_factory=dict)  # answers of other servers
    inaccessible: set[str] = field(default_factory=set)


class SpaceHierarchy:
    def __init__(self, storage: Storage, *, fetch_remote: FetchRemote | None = None) -> None:
        self._storage = storage
        self._fetch_remote = fetch_remote

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
        joined = frozenset(r for r, m in memberships.items() if m[0] == "join")
        walk = _Walk(UserViewer(user_id, joined), query.suggested_only)
        found = await load_space_room(
            self._storage, query.room_id, walk.viewer, walk.suggested_only
        )
        if found is None or not found[1]:
            raise MatrixError(Errcode.FORBIDDEN, "You cannot view this room's hierarchy")
        rooms = await self._walk(walk, found[0], max_depth)
        page = rooms[start : start + min(limit, MAX_LIMIT)]
        body: dict[str, Any] = {"rooms": page}
        end = start + len(page)
        if end < len(rooms):
            body["next_batch"] = f"{end}.{max_depth}.{int(query.suggested_only)}"
        return body

    async def for_server(self, origin: str, room_id: str, suggested_only: bool) -> dict[str, Any]:
        """GET /_matrix/federation/v1/hierarchy/{roomId} body: the room and its children
        `origin` may see; the children held here that it may not, by id."""
        viewer = ServerViewer(origin)
        found = await load_space_room(self._storage, room_id, viewer, suggested_only)
        if found is None or not found[1]:
            raise MatrixError(Errcode.NOT_FOUND, "Unknown room, or not one your server may see")
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for child_id, _ in found[0].children:
            child = await load_space_room(self._storage, child_id, viewer, suggested_only)
            if child is None:
                continue  # not held here: the requesting server asks the child's via itself
            if child[1]:
                children.append(child[0].summary)
            else:
                inaccessible.append(child_id)
        return {"room": found[0].summary, "children": children, "inaccessible_children": inaccessible}

    async def _walk(self, walk: _Walk, root: SpaceRoom, max_depth: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        seen = {root.summary["room_id"]}
        stack: list[tuple[SpaceRoom, int]] = [(root, 0)]
        while stack and len(out) < MAX_ROOMS:
            room, depth = stack.pop()
            out.append(room.summary)
            if depth >= max_depth:
                continue
            found: list[SpaceRoom] = []
            for child_id, via in room.children:
                if child_id in seen:
                    continue
                seen.add(child_id)
                child = await self._room(walk, child_id, via)
                if child is not None:
                    found.append(child)
            stack.extend((c, depth + 1) for c in reversed(found))
        return out

    async def _room(self, walk: _Walk, room_id: str, via: Sequence[str]) -> SpaceRoom | None:
        """The child, held here or asked of its via servers; None when not visible."""
        local = await load_space_room(self._storage, room_id, walk.viewer, walk.suggested_only)
        if local is not None:
            return local[0] if local[1] else None
        if room_id not in walk.remote and room_id not in walk.inaccessible:
            await self._ask(walk, room_id, via)
        room = walk.remote.get(room_id)
        if room is None or not visible_summary(room.summary, walk.viewer.joined):
            return None
        return room

    async def _ask(self, walk: _Walk, room_id: str, via: Sequence[str]) -> None:
        if self._fetch_remote is None:
            return
        answer = await self._fetch_remote(room_id, via, walk.suggested_only)
        if answer is None:
            walk.inaccessible.add(room_id)  # unreachable: not asked again in this walk
            return
        root = remote_room(answer.get("room"), walk.suggested_only)
        if root is None or root.summary["room_id"] != room_id:
            walk.inaccessible.add(room_id)
            return
        walk.remote[room_id] = root
        children = answer.get("children")
        for summary in children if isinstance(children, list) else ():
            child = remote_room(summary, walk.suggested_only)
            if child is not None:
                walk.remote.setdefault(child.summary["room_id"], child)
        gone = answer.get("inaccessible_children")
        if isinstance(gone, list):
            walk.inaccessible.update(r for r in gone if isinstance(r, str))


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
