"""Room aliases on this server (client-server-api §Room aliases, directory.yaml).

Aliases live in our own table; only aliases on our server name can be created here. Another
server's alias is resolved by asking that server (the `remote` lookup handed in, GET
/query/directory; directory.yaml: "The server will use the federation API to resolve the alias if
the domain part of the alias does not correspond to the server's own domain"). m.room.canonical_alias
content is validated before it is sent: every local alias it names must point at the room
(room_state.yaml: 400 M_BAD_ALIAS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_server_name
from dendrite_lite.rooms.access import history_visibility, load_current
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import aliases as aliases_table

__all__ = [
    "alias_from_localpart",
    "check_canonical_alias",
    "create_alias",
    "delete_alias",
    "local_aliases",
    "parse_alias",
    "resolve_alias",
]

log = logging.getLogger(__name__)

MAX_ALIAS_BYTES = 255
CANONICAL_ALIAS = "m.room.canonical_alias"


def parse_alias(alias: Any) -> tuple[str, str]:
    """(localpart, server) of `#localpart:server`, or 400 M_INVALID_PARAM."""
    if (
        not isinstance(alias, str)
        or not alias.startswith("#")
        or len(alias.encode("utf-8", "surrogatepass")) > MAX_ALIAS_BYTES
    ):
        raise MatrixError(Errcode.INVALID_PARAM, f"Room alias {alias!r} invalid")
    local, sep, server = alias[1:].partition(":")
    if not sep or not local or "\x00" in local or not is_valid_server_name(server):
        raise MatrixError(Errcode.INVALID_PARAM, f"Room alias {alias!r} invalid")
    return local, server


def alias_from_localpart(localpart: str, server_name: str) -> str:
    """createRoom's room_alias_name -> the full alias (400 M_INVALID_PARAM if it cannot be one)."""
    if not localpart or any(c in localpart for c in ":# \x00"):
        raise MatrixError(Errcode.INVALID_PARAM, f"room_alias_name {localpart!r} is not valid")
    alias = f"#{localpart}:{server_name}"
    parse_alias(alias)
    return alias


def _require_local(alias: str, server_name: str) -> None:
    if parse_alias(alias)[1] != server_name:
        raise MatrixError(Errcode.INVALID_PARAM, f"Room alias {alias} is not on this server")


async def _lookup(storage: Storage, alias: str) -> aliases_table.RoomAlias | None:
    return await storage.db.read(lambda c: aliases_table.select_alias(c, alias))


async def alias_is_free(storage: Storage, alias: str) -> bool:
    return await _lookup(storage, alias) is None


async def create_alias(
    storage: Storage,
    *,
    server_name: str,
    requester: str,
    alias: str,
    room_id: str,
    require_joined: bool = True,
) -> None:
    """PUT /directory/room/{alias}: 409 M_UNKNOWN if taken, 404 for an unknown room, 403 when the
    requester is not joined (anyone could otherwise point names at rooms they cannot see)."""
    _require_local(alias, server_name)
    room = await load_current(storage, room_id, [("m.room.member", requester)])
    if require_joined and room.membership(requester) != "join":
        raise MatrixError(Errcode.FORBIDDEN, f"You are not joined to {room_id}")
    now = int(time.time() * 1000)
    inserted = await storage.db.write(
        lambda c: aliases_table.insert_alias(c, alias, room_id, requester, now)
    )
    if not inserted:
        raise MatrixError(Errcode.UNKNOWN, f"Room alias {alias} already exists.", status=409)


async def resolve_alias(
    storage: Storage,
    *,
    server_name: str,
    alias: str,
    remote: Callable[[str], Awaitable[tuple[str, list[str]]]] | None = None,
    ask_appservice: Callable[[str], Awaitable[bool]] | None = None,
) -> tuple[str, list[str]]:
    """(room_id, servers) for GET /directory/room/{alias}; 404 M_NOT_FOUND if unmapped.

    An unknown local alias is asked of `ask_appservice` (the AS whose namespace holds it,
    appservice/requests.py), which may create it before answering yes.

    Another server's alias goes to `remote` (federation/joins.py resolve_remote_alias, which
    raises the 404s); without it (federation disabled, or answering another server's
    /query/directory, which only concerns our aliases) it is unknown here."""
    _, server = parse_alias(alias)
    if server != server_name:
        if remote is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Room alias {alias} not found.")
        return await remote(alias)
    found = await _lookup(storage, alias)
    if found is None and ask_appservice is not None and await ask_appservice(alias):
        found = await _lookup(storage, alias)
    if found is None:
        raise MatrixError(Errcode.NOT_FOUND, f"Room alias {alias} not found.")
    return found.room_id, [server_name]


async def delete_alias(
    storage: Storage,
    pipeline: RoomPipeline,
    *,
    server_name: str,
    requester: str,
    is_admin: bool,
    alias: str,
) -> None:
    """DELETE /directory/room/{alias}: allowed for the alias's creator, server admins and room
    members allowed to send m.room.canonical_alias. Also drops it from the canonical alias event
    when the requester may change that (directory.yaml's note)."""
    _require_local(alias, server_name)
    found = await _lookup(storage, alias)
    if found is None:
        raise MatrixError(Errcode.NOT_FOUND, f"Room alias {alias} not found.")
    room = await load_current(storage, found.room_id, [("m.room.member", requester)])
    may_edit_canonical = room.membership(requester) == "join" and room.power_level(
        requester
    ) >= room.required_level(CANONICAL_ALIAS, "")
    if not (found.creator == requester or is_admin or may_edit_canonical):
        raise MatrixError(Errcode.FORBIDDEN, "You may not delete this alias")
    await storage.db.write(lambda c: aliases_table.delete_alias(c, alias))
    canonical = await load_current(storage, found.room_id, [(CANONICAL_ALIAS, "")])
    event = canonical.get(CANONICAL_ALIAS)
    if event is None or not may_edit_canonical:
        return
    content = dict(event.content)
    alt = content.get("alt_aliases")
    changed = False
    if content.get("alias") == alias:
        del content["alias"]
        changed = True
    if isinstance(alt, list) and alias in alt:
        content["alt_aliases"] = [a for a in alt if a != alias]
        changed = True
    if changed:
        spec = EventSpec(requester, CANONICAL_ALIAS, content, "")
        await pipeline.send(found.room_id, spec)


async def local_aliases(
    storage: Storage, *, requester: str, room_id: str, is_admin: bool = False
) -> list[str]:
    """GET /rooms/{roomId}/aliases: joined members, or anyone if world_readable; server admins
    too, as Synapse lets them (admin tools list a user's rooms by alias)."""
    room = await load_current(storage, room_id, [("m.room.member", requester)])
    member = room.membership(requester) == "join"
    if not (is_admin or member or history_visibility(room) == "world_readable"):
        raise MatrixError(Errcode.FORBIDDEN, "You are not a member of the room.")
    return await storage.db.read(lambda c: aliases_table.select_aliases_for_room(c, room_id))


async def check_canonical_alias(
    storage: Storage, *, server_name: str, room_id: str, content: Mapping[str, Any]
) -> None:
    """400 M_BAD_ALIAS unless every local alias in the content points at room_id; malformed
    aliases are 400 M_INVALID_PARAM (room_state.yaml)."""
    names: list[Any] = []
    if content.get("alias") is not None:
        names.append(content["alias"])
    alt = content.get("alt_aliases", [])
    if not isinstance(alt, list):
        raise MatrixError(Errcode.INVALID_PARAM, "alt_aliases must be a list")
    names.extend(alt)
    for name in names:
        _, server = parse_alias(name)
        if server != server_name:
            continue  # NOTSPEC: remote aliases are checked once federation can resolve them
        found = await _lookup(storage, name)
        if found is None or found.room_id != room_id:
            raise MatrixError(Errcode.BAD_ALIAS, f"Room alias {name} does not point to {room_id}")
