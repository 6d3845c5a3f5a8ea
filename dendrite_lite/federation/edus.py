"""Outbound EDUs in the shapes of server-server-api "EDUs" (data/api/server-server/definitions/
event-schemas): m.typing, m.receipt, m.presence, each addressed to the servers that should see it.

The typing, receipts and presence services call these after their own change is stored; only
our own users' changes are sent (a remote user's typing came from its server, which tells the
others itself).

    await edus.typing(room_id, user_id, typing=True)
    await edus.receipt(room_id, user_id, event_id, ts=..., thread_id=None)
    await edus.presence(user_id, "online", last_active_ago=0, currently_active=True)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from dendrite_lite.federation.sender import FederationSender, server_of

__all__ = ["EduFanout"]


class EduFanout:
    def __init__(self, sender: FederationSender) -> None:
        self._sender = sender

    def _ours(self, user_id: str) -> bool:
        return server_of(user_id) == self._sender.server_name

    async def typing(self, room_id: str, user_id: str, typing: bool) -> None:
        """m.typing to the room's other servers (best-effort: kept in memory only)."""
        if not self._ours(user_id):
            return
        content = {"room_id": room_id, "user_id": user_id, "typing": typing}
        await self._sender.send_edu(await self._sender.joined_servers(room_id), "m.typing", content)

    async def receipt(
        self, room_id: str, user_id: str, event_id: str, *, ts: int, thread_id: str | None = None
    ) -> None:
        """A public m.read receipt (never m.read.private) to the room's other servers; stored
        in the outbox, so it survives a restart."""
        if not self._ours(user_id):
            return
        data: dict[str, Any] = {"ts": ts}
        if thread_id is not None:
            data["thread_id"] = thread_id
        content = {room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": data}}}}
        await self._sender.send_edu(await self._sender.joined_servers(room_id), "m.receipt", content)

    async def presence(
        self,
        user_id: str,
        presence: str,
        *,
        last_active_ago: int,
        currently_active: bool | None = None,
        status_msg: str | None = None,
    ) -> None:
        """m.presence to every server sharing a room with the user (best-effort)."""
        if not self._ours(user_id):
            return
        entry: dict[str, Any] = {
            "user_id": user_id, "presence": presence, "last_active_ago": last_active_ago
        }
        if currently_active is not None:
            entry["currently_active"] = currently_active
        if status_msg is not None:
            entry["status_msg"] = status_msg
        servers = await self._sender.servers_sharing_rooms(user_id)
        await self._sender.send_edu(servers, "m.presence", {"push": [entry]})

    async def presence_on_join(
        self,
        room_id: str,
        joiner: str,
        members: Iterable[str],
        entries: Callable[[list[str]], Awaitable[list[dict[str, Any]]]],
    ) -> None:
        """A join makes a server newly share a room: a remote user's server gets the presence
        of our users in the room, and our joining user's presence goes to the room's servers
        (presence only travels on changes, so neither would hear of the other until the next).
        `members` are the room's joined members, `entries` gives the m.presence `push` entries
        of the users it is given."""
        if self._ours(joiner):
            servers = await self._sender.joined_servers(room_id)
            users = [joiner]
        else:
            servers = {server_of(joiner)}
            users = [m for m in members if self._ours(m)]
        push = await entries(users) if servers and users else []
        if push:
            await self._sender.send_edu(servers, "m.presence", {"push": push})
