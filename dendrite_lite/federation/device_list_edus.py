"""Our users' device list changes to other servers (server-server-api.md §Device Management,
§End-to-End Encryption): m.device_list_update for a device, m.signing_key_update for
cross-signing keys, to every server sharing a room with the user.

The device list stream (storage/device_lists.py) is the source: `flush` turns every change
after the outbound position into EDUs in the persistent outbox and moves the position, in one
write, so a change is queued exactly once, even across a crash (`flush` at start-up catches up
on changes committed just before one). It runs after each local change (DeviceListService's
on_local_change hook), one flush at a time.

- `stream_id` is the change's position in the stream, unique per user and increasing;
  `prev_id` is the user's previous device change (empty for the first): servers that got
  every update recognise it, the others resync from GET /user/devices, whose `stream_id` is
  the last change.
- An EDU describes the device as it is when queued (keys, display name, or `deleted`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiosqlite

from dendrite_lite.e2ee.cross_signing import add_cross_signing
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.storage import Storage
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import e2e_keys as e2e_keys_table
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.storage import remote_device_lists as table

__all__ = ["DeviceListEdus"]

BATCH = 200  # changes turned into EDUs per write


async def device_list_update(
    conn: aiosqlite.Connection, user_id: str, device_id: str, stream_id: int
) -> dict[str, Any]:
    """The m.device_list_update content for one change of our user's device."""
    content: dict[str, Any] = {"user_id": user_id, "device_id": device_id, "stream_id": stream_id}
    prev = await table.select_prev_device_change(conn, user_id, stream_id)
    content["prev_id"] = [prev] if prev is not None else []
    device = await devices_table.select_device(conn, user_id, device_id)
    if device is None:
        content["deleted"] = True
        return content
    if device.display_name is not None:
        content["device_display_name"] = device.display_name
    keys = await e2e_keys_table.select_device_keys(conn, user_id, [device_id])
    if keys:
        found = {user_id: {device_id: dict(keys[0].keys)}}
        await add_cross_signing(conn, "", found)  # the device's self-signing signature
        content["keys"] = found[user_id][device_id]
    return content


async def signing_key_update(conn: aiosqlite.Connection, user_id: str) -> dict[str, Any]:
    """The m.signing_key_update content: the user's master and self-signing keys now."""
    found = await add_cross_signing(conn, "", {user_id: {}})
    content: dict[str, Any] = {"user_id": user_id}
    for field, by_user in (("master_key", "master_keys"), ("self_signing_key", "self_signing_keys")):
        if user_id in found[by_user]:
            content[field] = found[by_user][user_id]
    return content


class DeviceListEdus:
    def __init__(
        self,
        storage: Storage,
        sender: FederationSender,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._sender = sender
        self._suffix = ":" + sender.server_name
        self._clock = clock
        self._lock = asyncio.Lock()

    async def on_local_change(self, user_id: str) -> None:
        """DeviceListService hook: queue what changed (the user's change and any other)."""
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            while True:
                destinations, more = await self._storage.db.write(self._queue_batch)
                self._sender.wake(destinations)
                if not more:
                    return

    async def _queue_batch(self, conn: aiosqlite.Connection) -> tuple[set[str], bool]:
        position = await table.select_outbound_position(conn)
        changes = await table.select_changes_after(conn, position, BATCH)
        woken: set[str] = set()
        now = int(self._clock() * 1000)
        for change in changes:
            if not change.user_id.endswith(self._suffix):
                continue  # another server's user: its own server tells the others
            servers = await outbox_table.select_servers_sharing_rooms(conn, change.user_id)
            servers.discard(self._sender.server_name)
            if not servers:
                continue
            if change.device_id is None:
                edu_type, content = "m.signing_key_update", await signing_key_update(conn, change.user_id)
            else:
                edu_type = "m.device_list_update"
                content = await device_list_update(conn, change.user_id, change.device_id, change.stream_id)
            await outbox_table.insert_outbox_edus(conn, sorted(servers), edu_type, content, now)
            woken |= servers
        if changes:
            await table.update_outbound_position(conn, changes[-1].stream_id)
        return woken, len(changes) == BATCH
