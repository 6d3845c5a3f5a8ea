"""Federation queries about our users and aliases (server-server-api.md §Querying for
information; data/api/server-server/query.yaml)."""

from __future__ import annotations

from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id
from dendrite_lite.rooms.aliases import parse_alias, resolve_alias
from dendrite_lite.storage import Storage
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.users.profile import PROFILE_FIELDS, get_profile

__all__ = ["query_profile", "query_directory"]


async def query_profile(
    storage: Storage, server_name: str, user_id: Any, field: Any = None
) -> dict[str, str]:
    """GET /query/profile: the public profile of one of OUR users, or one field of it.
    400 M_INVALID_PARAM for a malformed or non-local user id or an unknown field name;
    404 M_NOT_FOUND for an unknown user or an unset field."""
    if not isinstance(user_id, str) or not is_valid_user_id(user_id):
        raise MatrixError(Errcode.INVALID_PARAM, "user_id must be a user ID")
    if user_id.partition(":")[2] != server_name:
        raise MatrixError(Errcode.INVALID_PARAM, f"{user_id} is not a user of this server")
    if field is not None and field not in PROFILE_FIELDS:
        # We keep no other profile fields (users/profile.py): none can be set.
        raise MatrixError(Errcode.NOT_FOUND, f"Profile field {field} not set")
    profile = (await get_profile(storage, user_id)).to_json()
    if field is None:
        return profile
    if field not in profile:
        raise MatrixError(Errcode.NOT_FOUND, f"Profile field {field} not set")
    return {field: profile[field]}


async def query_directory(storage: Storage, server_name: str, room_alias: Any) -> dict[str, Any]:
    """GET /query/directory: {room_id, servers} for one of OUR aliases; servers are ours first,
    then every other server with a joined member (404 M_NOT_FOUND if unmapped)."""
    if not isinstance(room_alias, str):
        raise MatrixError(Errcode.INVALID_PARAM, "room_alias is required")
    if parse_alias(room_alias)[1] != server_name:
        raise MatrixError(Errcode.NOT_FOUND, f"Room alias {room_alias} not found.")
    room_id, _ = await resolve_alias(storage, server_name=server_name, alias=room_alias)
    joined = await storage.db.read(lambda c: outbox_table.select_joined_servers(c, room_id))
    return {"room_id": room_id, "servers": [server_name, *sorted(joined - {server_name})]}
