"""Rooms a server admin blocked (the admin API's block and room deletion): nobody joins them
through us, neither our users (rooms/membership.py) nor other servers' (make_join, send_join,
make_knock), and no invite into them reaches our users (/invite from other servers, and our
own users' invites). Here, below both the room services and the federation handlers, so each
asks the same question."""

from __future__ import annotations

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage, blocked_rooms

__all__ = ["refuse_blocked_room"]


async def refuse_blocked_room(storage: Storage, room_id: str) -> None:
    """403 M_FORBIDDEN when the room is blocked on this server."""
    blocker = await storage.db.read(
        lambda c: blocked_rooms.select_room_blocker(c, room_id)
    )
    if blocker is not None:
        raise MatrixError(
            Errcode.FORBIDDEN, "This room has been blocked on this server"
        )
