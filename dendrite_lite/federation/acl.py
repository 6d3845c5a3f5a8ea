"""Server ACLs (m.room.server_acl; server-server-api.md §Server Access Control Lists).

`server_allowed(content, server_name)` applies the event's rules in the spec's order; a room
without an ACL event allows everyone. `check_server_acl` is the 403 M_FORBIDDEN guard the
federation endpoints that the spec lists call before anything else about a room.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dendrite_lite.delegation.discovery import is_ip_literal
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.push.glob import compile_glob
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import state as state_table

__all__ = ["SERVER_ACL", "server_allowed", "acl_host", "room_acl", "check_server_acl"]

SERVER_ACL = "m.room.server_acl"


def acl_host(server_name: str) -> str:
    """The server name without its port: the ACL never considers ports (IPv6 keeps brackets)."""
    if server_name.startswith("["):
        return server_name[: server_name.find("]") + 1]
    return server_name.partition(":")[0]


def _patterns(content: Mapping[str, Any], key: str) -> list[str]:
    value = content.get(key)
    if not isinstance(value, list):
        return []  # missing or malformed: an empty list (allow: nobody; deny: nobody)
    return [p for p in value if isinstance(p, str)]


def server_allowed(content: Mapping[str, Any] | None, server_name: str) -> bool:
    """The five steps of m.room.server_acl; `content` None means the room has no ACL."""
    if content is None:
        return True
    host = acl_host(server_name)
    allow_ip = content.get("allow_ip_literals")
    if allow_ip is False and is_ip_literal(host):
        return False
    if any(compile_glob(p)(host) for p in _patterns(content, "deny")):
        return False
    return any(compile_glob(p)(host) for p in _patterns(content, "allow"))


async def room_acl(storage: Storage, room_id: str) -> Mapping[str, Any] | None:
    """The content of the room's current m.room.server_acl, None if it has none."""

    async def load(conn: Any) -> Mapping[str, Any] | None:
        event_id = await state_table.select_current_state_event_id(conn, room_id, SERVER_ACL, "")
        if event_id is None:
            return None
        stored = await events_table.select_event(conn, event_id)
        return stored.event.content if stored is not None else None

    return await storage.db.read(load)


async def check_server_acl(storage: Storage, room_id: str, origin: str) -> None:
    """403 M_FORBIDDEN when the room's ACL denies `origin`."""
    if not server_allowed(await room_acl(storage, room_id), origin):
        raise MatrixError(Errcode.FORBIDDEN, f"Server {origin} is denied by the room's server ACL")
