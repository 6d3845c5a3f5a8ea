"""Other servers' users' device lists (server-server-api.md §Device Management): a cache kept
current by their servers' EDUs, so /keys/query for a room-mate on another server is answered
without asking that server each time.

- A list is cached when we fetch it while one of our users shares a room with its user (the
  whole list: /user/keys/query for all devices, or /user/devices). It is used only while a room
  is shared: their server stops telling us of changes once none is.
- m.device_list_update EDUs apply in order: one whose `prev_id` is the stream id we hold (one
  update after another) changes one device; anything else (no `prev_id`, an unknown one, no
  list yet) means we missed updates, and the whole list is fetched again from /user/devices
  (a resync). A failed resync marks the list stale.
- Stale lists are asked for again at the next /keys/query. A list goes stale when a remote user
  joins a room of ours, or one of our users joins a room with them (`prepare`, a persist hook):
  while no room was shared, nobody told us of changes.
- Every applied change enters the device list stream for the remote user, after the new keys
  are stored, so /sync `device_lists.changed` and /keys/changes name them and clients re-query.
EDUs of one user are applied one at a time, in the order received, in background tasks (a
resync waits on the other server; the /send answer does not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.events.event import Event
from dendrite_lite.storage import Storage
from dendrite_lite.storage import cross_signing as cross_signing_table
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import e2e_keys as e2e_keys_table
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.storage import remote_device_lists as table

__all__ = ["CROSS_SIGNING_FIELDS", "RemoteDeviceLists", "UserDevicesFetcher", "parse_cross_signing"]

log = logging.getLogger(__name__)

# GET /user/devices/{userId} on the user's server -> the parsed answer (raises on failure).
UserDevicesFetcher = Callable[[str, str], Awaitable[Any]]
InTxn = Callable[[aiosqlite.Connection, Sequence[tuple[Event, int]]], Awaitable[None]]

# Field of /user/devices and m.signing_key_update -> key type in e2e_cross_signing_keys.
CROSS_SIGNING_FIELDS = {"master_key": "master", "self_signing_key": "self_signing"}


def _server_of(user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
        return None
    return user_id.partition(":")[2]


def parse_cross_signing(user_id: str, body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The user's master and self-signing keys in an answer or EDU (others, or keys naming
    another user, are left out)."""
    out: dict[str, dict[str, Any]] = {}
    for field, key_type in CROSS_SIGNING_FIELDS.items():
        key = body.get(field)
        if isinstance(key, dict) and key.get("user_id") == user_id:
            out[key_type] = key
    return out


def _device_keys(keys: Any, name: Any) -> dict[str, Any] | None:
    """Device keys as we store a remote device's: as its server sent them, with the display
    name in `unsigned` (where /keys/query shows it); None for a device with no keys.

    As Synapse does, keys that do not name the user and device (or are not signed) are kept
    and served as given. The device's own server is the authority on its
    users' devices, and clients check the `user_id`, `device_id` and signatures of the keys
    they are given before trusting them; dropping the device here would hide it altogether.
    """
    if not isinstance(keys, dict) or not keys:
        return None
    stored = {k: v for k, v in keys.items() if k != "unsigned"}
    if isinstance(name, str):
        stored["unsigned"] = {"device_display_name": name}
    return stored


def _parse_user_devices(user_id: str, body: Any) -> tuple[int, dict[str, dict[str, Any]]]:
    """(stream_id, device id -> keys) of a /user/devices answer; ValueError if malformed."""
    if not isinstance(body, dict) or body.get("user_id", user_id) != user_id:
        raise ValueError("answer is not about the user asked for")
    stream_id, devices = body.get("stream_id"), body.get("devices")
    if isinstance(stream_id, bool) or not isinstance(stream_id, int) or not isinstance(devices, list):
        raise ValueError("answer has no stream_id and devices")
    out: dict[str, dict[str, Any]] = {}
    for device in devices:
        if not isinstance(device, dict) or not isinstance(device.get("device_id"), str):
            continue
        keys = _device_keys(device.get("keys"), device.get("device_display_name"))
        if keys is not None:
            out[device["device_id"]] = keys
    return stream_id, out


class RemoteDeviceLists:
    def __init__(
        self,
        storage: Storage,
        device_lists: DeviceListService,
        *,
        server_name: str,
        fetch_user_devices: UserDevicesFetcher | None = None,
    ) -> None:
        self._storage = storage
        self._device_lists = device_lists
        self._suffix = ":" + server_name
        self._fetch = fetch_user_devices
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _ours(self, user_id: str) -> bool:
        return user_id.endswith(self._suffix)

    # --- the cache -------------------------------------------------------------------------------

    async def shares_room(self, conn: aiosqlite.Connection, user_id: str) -> bool:
        """Whether one of our users is joined to a room the remote user is joined to."""
        sharing = await device_lists_table.select_users_sharing_rooms_with(conn, user_id)
        return any(self._ours(u) for u in sharing)

    async def usable(self, conn: aiosqlite.Connection, user_ids: Sequence[str]) -> list[str]:
        """Those of the remote users whose cached list may answer a /keys/query now."""
        lists = await table.select_remote_lists(conn, user_ids)
        return [
            u for u in user_ids
            if u in lists and not lists[u].stale and await self.shares_room(conn, u)
        ]

    async def store_queried(self, answers: Mapping[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Whole lists (user -> (device id -> keys, key type -> cross-signing key)) from a
        /user/keys/query answer: cached for the users we share a room with, unless an update
        or resync made their cached list current while the query was under way (the answer
        may be older than it)."""

        async def txn(conn: aiosqlite.Connection) -> None:
            held = await table.select_remote_lists(conn, list(answers))
            for user_id, (devices, cross_signing) in answers.items():
                current = held.get(user_id)
                if current is not None and current.stream_id is not None and not current.stale:
                    continue
                if await self.shares_room(conn, user_id):
                    await table.replace_remote_device_keys(conn, user_id, devices, cross_signing)
                    await table.upsert_remote_list(conn, user_id, None)

        if answers:
            await self._storage.db.write(txn)

    async def prepare(self, room_id: str, events: Sequence[Event]) -> InTxn | None:
        """Persist hook (local and federated events): joins that start sharing a room make the
        cached lists involved stale."""
        joins = [e for e in events if e.type == "m.room.member" and e.state_key and e.membership == "join"]
        if not joins:
            return None
        targets = [e.state_key for e in joins if e.state_key]
        before = await self._storage.db.read(
            lambda conn: outbox_table.select_memberships(conn, room_id, targets)
        )
        new = [t for t in targets if before.get(t) != "join"]
        if not new:
            return None  # profile changes of members already joined

        async def write(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            stale = {t for t in new if not self._ours(t)}
            if any(self._ours(t) for t in new):
                members = await device_lists_table.select_room_members(conn, room_id)
                stale.update(m for m in members if not self._ours(m))
            await table.mark_remote_lists_stale(conn, sorted(stale))

        return write

    # --- inbound EDUs ----------------------------------------------------------------------------

    async def on_device_list_update(self, origin: str, content: Mapping[str, Any]) -> None:
        """An m.device_list_update EDU from `origin` (applied in the background)."""
        user_id, device_id, stream_id = content.get("user_id"), content.get("device_id"), content.get("stream_id")
        if _server_of(user_id) != origin or not isinstance(device_id, str):
            return
        if isinstance(stream_id, bool) or not isinstance(stream_id, int):
            return
        prev = content.get("prev_id")
        prev_ids = [p for p in prev if isinstance(p, int)] if isinstance(prev, list) else []
        self._spawn(str(user_id), self._apply_update(str(user_id), device_id, stream_id, prev_ids, content))

    async def on_signing_key_update(self, origin: str, content: Mapping[str, Any]) -> None:
        """An m.signing_key_update EDU from `origin`."""
        user_id = content.get("user_id")
        if _server_of(user_id) != origin:
            return
        self._spawn(str(user_id), self._apply_signing_keys(str(user_id), content))

    def _spawn(self, user_id: str, work: Coroutine[Any, Any, None]) -> None:
        # One lock per remote user ever updated: a few hundred bytes each, for the users we
        # share rooms with.
        lock = self._locks.setdefault(user_id, asyncio.Lock())

        async def run() -> None:
            try:
                async with lock:
                    await work
            except Exception:
                log.exception("device list update of %s failed", user_id)

        task = asyncio.create_task(run(), name=f"device-list-{user_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until every EDU received so far is applied (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _apply_update(
        self, user_id: str, device_id: str, stream_id: int, prev_ids: list[int], content: Mapping[str, Any]
    ) -> None:
        async def txn(conn: aiosqlite.Connection) -> str:
            if not await self.shares_room(conn, user_id):
                return "ignored"  # nobody here needs the list; their server stops soon
            held = (await table.select_remote_lists(conn, [user_id])).get(user_id)
            if held is not None and held.stream_id is not None and stream_id <= held.stream_id:
                return "ignored"  # a repeat
            if held is None or held.stale or held.stream_id is None or not prev_ids:
                return "resync"
            if any(p != held.stream_id for p in prev_ids):
                return "resync"  # we missed an update
            keys = None if content.get("deleted") is True else _device_keys(
                content.get("keys"), content.get("device_display_name")
            )
            if keys is None:
                await e2e_keys_table.delete_device_e2e_keys(conn, user_id, device_id)
            else:
                await table.replace_remote_device(conn, user_id, device_id, keys)
            await table.upsert_remote_list(conn, user_id, stream_id)
            await device_lists_table.insert_device_list_change(conn, user_id, device_id)
            return "applied"

        outcome = await self._storage.db.write(txn)
        if outcome == "resync":
            await self.resync(user_id)
        elif outcome == "applied":
            await self._device_lists.changed(user_id, local=False)

    async def _apply_signing_keys(self, user_id: str, content: Mapping[str, Any]) -> None:
        keys = parse_cross_signing(user_id, content)

        async def txn(conn: aiosqlite.Connection) -> bool:
            if not keys or not await self.shares_room(conn, user_id):
                return False
            if (await table.select_remote_lists(conn, [user_id])).get(user_id) is not None:
                for key_type, key in keys.items():
                    await cross_signing_table.upsert_cross_signing_key(conn, user_id, key_type, key)
            await device_lists_table.insert_device_list_change(conn, user_id, None)
            return True

        if await self._storage.db.write(txn):
            await self._device_lists.changed(user_id, local=False)

    async def resync(self, user_id: str) -> bool:
        """Fetch the user's whole list from /user/devices and replace the cached one; on failure
        mark it stale (the next /keys/query asks their server). Either way our users hear of a
        change. True if the list is current."""
        server = _server_of(user_id)
        body: Any = None
        error: str | None = "federation is disabled"
        if self._fetch is not None and server is not None:
            try:
                body = await self._fetch(server, user_id)
                stream_id, devices = _parse_user_devices(user_id, body)
                error = None
            except Exception as e:  # noqa: BLE001 - any failure: unreachable, refused, malformed
                error = str(e) or type(e).__name__

        async def txn(conn: aiosqlite.Connection) -> None:
            if error is None:
                await table.replace_remote_device_keys(conn, user_id, devices, parse_cross_signing(user_id, body))
                await table.upsert_remote_list(conn, user_id, stream_id)
            else:
                held = (await table.select_remote_lists(conn, [user_id])).get(user_id)
                await table.upsert_remote_list(conn, user_id, held.stream_id if held else None, stale=True)
            await device_lists_table.insert_device_list_change(conn, user_id, None)

        if error is not None:
            log.info("device list resync of %s failed: %s", user_id, error)
        await self._storage.db.write(txn)
        await self._device_lists.changed(user_id, local=False)
        return error is None
