"""Dehydrated devices (MSC3814, as Synapse serves it under
/_matrix/client/unstable/org.matrix.msc3814.v1/): a device a client parks on the server so that
Megolm keys sent while the user has no device online can be picked up by the next one.

- A dehydrated device is an ordinary device with no access token: its keys are uploaded with it
  (same checks as /keys/upload), others see it in /keys/query and claim its one-time keys, and
  to-device messages for it (also through "*") land in its inbox. Nobody can /sync as it.
- Its messages are read through POST (or GET) .../dehydrated_device/{deviceId}/events in
  batches. Unlike /sync, reading never deletes them (MSC3814: an aborted rehydration can start
  over); they go with the device.
- At most one per user: PUT replaces the previous one, deleting it like DELETE /devices would
  (keys, inbox, a device list change), in the same transaction that stores the new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.e2ee.key_upload import parse_key_upload
from dendrite_lite.e2ee.keys import store_upload
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field, required_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import dehydrated_devices as table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import to_device as to_device_table
from dendrite_lite.users.devices import delete_devices_in
from dendrite_lite.users.sessions import validate_device_id

__all__ = ["MAX_EVENTS_LIMIT", "DehydratedDevicesService", "DehydratedEvents"]

MAX_EVENTS_LIMIT = 1000  # per batch; the client asks again with next_batch
_TOKEN_PREFIX = "d"  # Synapse's form of a to-device stream position


@dataclass(frozen=True, slots=True)
class DehydratedEvents:
    """A batch of the dehydrated device's to-device messages. `more`: the batch ended before
    the current end of the stream."""

    events: list[dict[str, Any]]
    next_batch: str
    more: bool


def _parse_token(token: str | None) -> int:
    if token is None:
        return 0
    digits = token[len(_TOKEN_PREFIX):] if token.startswith(_TOKEN_PREFIX) else ""
    if not digits.isascii() or not digits.isdigit():
        raise MatrixError(Errcode.INVALID_PARAM, f"next_batch {token[:50]!r} is not a batch token")
    return int(digits)


class DehydratedDevicesService:
    def __init__(
        self,
        storage: Storage,
        device_lists: DeviceListService,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._device_lists = device_lists
        self._clock = clock

    async def put(self, user_id: str, body: Mapping[str, Any]) -> str:
        """PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device -> device id."""
        device_id = validate_device_id(required_field(body, "device_id", "string"))
        device_data = required_field(body, "device_data", "object")
        required_field(device_data, "algorithm", "string", name="device_data.algorithm")
        display_name = optional_field(body, "initial_device_display_name", "string")
        required_field(body, "device_keys", "object")  # MSC3814: keys come with the device
        upload = parse_key_upload(body, user_id, device_id)
        now_ms = int(self._clock() * 1000)

        async def txn(conn: aiosqlite.Connection) -> None:
            old = await table.select_dehydrated_device(conn, user_id)
            if old is not None:
                await delete_devices_in(conn, user_id, [old.device_id])
            created = await devices_table.insert_device(
                conn, user_id=user_id, device_id=device_id, created_ts=now_ms,
                display_name=display_name,
            )
            if not created:
                # A device the user logged in with: making it dehydrated would let the next
                # PUT delete it, tokens and all.
                raise MatrixError(
                    Errcode.INVALID_PARAM, f"device_id {device_id!r} is in use by another device"
                )
            await store_upload(conn, user_id, device_id, upload)
            await table.upsert_dehydrated_device(conn, user_id, device_id, device_data)

        await self._storage.db.write(txn)
        await self._device_lists.changed(user_id)
        return device_id

    async def get(self, user_id: str) -> table.DehydratedDevice:
        """GET .../dehydrated_device; 404 M_NOT_FOUND when the user has none."""
        device = await self._storage.db.read(
            lambda conn: table.select_dehydrated_device(conn, user_id)
        )
        if device is None:
            raise MatrixError(Errcode.NOT_FOUND, "No dehydrated device available")
        return device

    async def delete(self, user_id: str) -> str:
        """DELETE .../dehydrated_device -> the deleted device's id; 404 M_NOT_FOUND when none."""

        async def txn(conn: aiosqlite.Connection) -> str | None:
            device = await table.select_dehydrated_device(conn, user_id)
            if device is None:
                return None
            await delete_devices_in(conn, user_id, [device.device_id])
            return device.device_id

        device_id = await self._storage.db.write(txn)
        if device_id is None:
            raise MatrixError(Errcode.NOT_FOUND, "No dehydrated device available")
        await self._device_lists.changed(user_id)
        return device_id

    async def events(
        self, user_id: str, device_id: str, next_batch: str | None, limit: int
    ) -> DehydratedEvents:
        """POST .../dehydrated_device/{deviceId}/events: the messages after `next_batch`.
        403 M_FORBIDDEN unless device_id is the user's dehydrated device."""
        if limit < 1:
            raise MatrixError(Errcode.INVALID_PARAM, "limit must be positive")
        since = _parse_token(next_batch)
        limit = min(limit, MAX_EVENTS_LIMIT)

        async def read(conn: aiosqlite.Connection) -> DehydratedEvents | None:
            device = await table.select_dehydrated_device(conn, user_id)
            if device is None or device.device_id != device_id:
                return None
            until = await to_device_table.select_inbox_position(conn)
            batch = await to_device_table.select_messages(
                conn, user_id, device_id, since, until, limit
            )
            more = len(batch.events) == limit
            end = batch.last_position if more else max(until, since)
            return DehydratedEvents(batch.events, f"{_TOKEN_PREFIX}{end}", more)

        found = await self._storage.db.read(read)
        if found is None:
            raise MatrixError(Errcode.FORBIDDEN, "You may only fetch messages for your dehydrated device")
        return found
