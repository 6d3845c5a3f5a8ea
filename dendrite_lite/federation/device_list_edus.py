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

Joins (`prepare`, a persist hook on local and federated events): when one of our users joins a
room, the room's servers sharing no other room with them have never heard of their devices
(§Device Management: updates are also sent "when that user joins a room which contains servers
which are not already receiving updates"). Once the join is committed, those servers get the
user's last m.device_list_update from before the join (later ones reach them through `flush`,
and a repeat confused SyTest's prev_id check); its prev_id is unknown to them (or empty), so
they fetch the whole list from /user/devices, which has every change. Persist hooks run before the commit and nothing calls back after it,
so a task waits until the join event can be read (readers only see committed writes), at most
JOIN_COMMIT_WAIT_S: a join whose transaction failed is never seen, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.e2ee.cross_signing import add_cross_signing
from dendrite_lite.events.event import Event
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.storage import Storage
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import e2e_keys as e2e_keys_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.storage import remote_device_lists as table

__all__ = ["DeviceListEdus"]

BATCH = 200  # changes turned into EDUs per write
JOIN_COMMIT_WAIT_S = 30.0
JOIN_POLL_S = 0.05


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
        self._tasks: set[asyncio.Task[None]] = set()

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

    # --- joins ---------------------------------------------------------------------------------

    async def prepare(self, room_id: str, events: Sequence[Event]) -> None:
        """Persist hook: our users' joins (not profile changes of members already joined) queue
        the user's device list for the room's new servers once committed. Writes nothing in
        the events' transaction."""
        joins = [
            (e.state_key, e.event_id) for e in events
            if e.type == "m.room.member" and e.membership == "join" and e.state_key
            and e.state_key.endswith(self._suffix)
        ]
        if not joins:
            return None

        async def read(
            conn: aiosqlite.Connection,
        ) -> tuple[dict[str, str], dict[str, table.DeviceListChange | None]]:
            users = [u for u, _ in joins]
            latest = {u: await table.select_latest_device_change(conn, u) for u in users}
            return await outbox_table.select_memberships(conn, room_id, users), latest

        before, latest = await self._storage.db.read(read)
        for user_id, event_id in joins:
            # The change to send is the last one before the join: later ones go to the room's
            # servers through `flush` (the join committed first), and sending the newest here
            # too would repeat it.
            change = latest[user_id]
            if before.get(user_id) != "join" and change is not None and change.device_id is not None:
                task = asyncio.create_task(self._after_join(room_id, event_id, change))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _after_join(self, room_id: str, event_id: str, change: table.DeviceListChange) -> None:
        user_id, device_id = change.user_id, change.device_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOIN_COMMIT_WAIT_S
        while await self._storage.db.read(lambda c: events_table.select_event(c, event_id)) is None:
            if loop.time() > deadline:
                return
            await asyncio.sleep(JOIN_POLL_S)
        now = int(self._clock() * 1000)

        async def txn(conn: aiosqlite.Connection) -> set[str]:
            membership = await outbox_table.select_memberships(conn, room_id, [user_id])
            if membership.get(user_id) != "join":
                return set()  # rejected or gone again
            servers = await outbox_table.select_joined_servers(conn, room_id)
            servers -= await table.select_servers_sharing_other_rooms(conn, user_id, room_id)
            servers.discard(self._sender.server_name)
            if servers:
                content = await device_list_update(conn, user_id, device_id, change.stream_id)
                edu = "m.device_list_update"
                await outbox_table.insert_outbox_edus(conn, sorted(servers), edu, content, now)
            return servers

        self._sender.wake(await self._storage.db.write(txn))
