"""Application service room directories (client-server §Application service room directories):
an AS publishes rooms of a third-party network in a list of its own, kept apart from the
server's main public room list. Public room queries name a list by third_party_instance_id,
"<appservice id>|<network id>", as Synapse does."""

from __future__ import annotations

from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table
from dendrite_lite.storage import rooms as rooms_table

__all__ = ["set_visibility"]


async def set_visibility(
    storage: Storage, as_id: str | None, network_id: str, room_id: str, visibility: Any
) -> None:
    """Only an application service may do this (403 for a user's token)."""
    if as_id is None:
        raise MatrixError(Errcode.FORBIDDEN, "Only application services may use this list")
    if visibility not in ("public", "private"):
        raise MatrixError(Errcode.INVALID_PARAM, 'visibility must be "public" or "private"')

    async def write(conn: aiosqlite.Connection) -> None:
        if await rooms_table.select_room(conn, room_id) is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Unknown room {room_id}")
        await table.update_room_list(conn, as_id, network_id, room_id, listed=visibility == "public")

    await storage.db.write(write)
