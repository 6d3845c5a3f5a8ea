"""Our users' to-device messages for other servers' users, as m.direct_to_device EDUs
(server-server-api.md §Send-to-device messaging): e2ee/to_device.py's RemoteToDevice.

One EDU per destination server and request, holding the messages for that server's users,
written to the persistent outbox inside the /sendToDevice request's own transaction (so
nothing acknowledged to the client is lost on a restart), with a fresh `message_id` the
receiver deduplicates on.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import aiosqlite

from dendrite_lite.federation.sender import FederationSender, server_of
from dendrite_lite.storage import outbox as outbox_table

__all__ = ["ToDeviceEdus"]


def new_message_id() -> str:
    """16 URL-safe characters (the spec allows up to 32 codepoints)."""
    return secrets.token_urlsafe(12)


class ToDeviceEdus:
    def __init__(self, sender: FederationSender, *, clock: Callable[[], float] = time.time) -> None:
        self._sender = sender
        self._clock = clock

    async def queue_in(
        self,
        conn: aiosqlite.Connection,
        sender: str,
        event_type: str,
        messages: dict[str, dict[str, dict[str, Any]]],
    ) -> list[str]:
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, by_device in messages.items():
            by_server.setdefault(server_of(user_id), {})[user_id] = by_device
        by_server.pop(self._sender.server_name, None)
        now = int(self._clock() * 1000)
        for server, theirs in sorted(by_server.items()):
            content = {
                "sender": sender, "type": event_type, "message_id": new_message_id(), "messages": theirs
            }
            await outbox_table.insert_outbox_edus(conn, [server], "m.direct_to_device", content, now)
        return sorted(by_server)

    def wake(self, servers: list[str]) -> None:
        self._sender.wake(servers)
