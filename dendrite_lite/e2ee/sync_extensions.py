"""The end-to-end encryption parts of a /sync response (end_to_end_encryption.md §Extensions to
/sync, send_to_device.md §Extensions to /sync): `to_device`, `device_lists` (incremental syncs
with changes only), `device_one_time_keys_count` and `device_unused_fallback_key_types`, and the
positions of the to-device and device list streams in sync tokens. Sliding sync's to_device and e2ee
extensions (sync/sliding/extensions.py) use the same pieces: `deliver_to_device`, `key_counts`,
`device_list_changes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from dendrite_lite.e2ee.device_lists import DeviceListChanges, DeviceListService
from dendrite_lite.e2ee.keys import KeysService
from dendrite_lite.e2ee.to_device import MAX_PER_SYNC, ToDeviceService
from dendrite_lite.storage import Storage
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import to_device as to_device_table
from dendrite_lite.storage.to_device import Delivery
from dendrite_lite.sync.tokens import SyncToken

__all__ = ["E2eeSection", "E2eeSync"]


@dataclass(frozen=True, slots=True)
class E2eeSection:
    fields: dict[str, Any] = field(default_factory=dict)  # merged into the response body
    has_news: bool = False  # to-device messages or device list changes: worth answering for
    to_device_position: int = 0  # the to-device position `next_batch` may carry


class E2eeSync:
    def __init__(
        self,
        storage: Storage,
        keys: KeysService,
        device_lists: DeviceListService,
        to_device: ToDeviceService,
    ) -> None:
        self._storage = storage
        self._keys = keys
        self._device_lists = device_lists
        self._to_device = to_device

    @staticmethod
    async def positions(conn: aiosqlite.Connection) -> tuple[int, int]:
        """(to-device, device list) stream positions, read inside the caller's read."""
        return (
            await to_device_table.select_inbox_position(conn),
            await device_lists_table.select_device_list_position(conn),
        )

    async def idle_fields(self, user_id: str, device_id: str | None) -> dict[str, Any]:
        """The fields of a long-poll answered with no news: nothing new, the counts as they are."""
        fields: dict[str, Any] = {}
        if device_id is not None:
            fields["to_device"] = {"events": []}
            fields.update(await self.key_counts(user_id, device_id))
        return fields

    async def key_counts(self, user_id: str, device_id: str) -> dict[str, Any]:
        """device_one_time_keys_count and device_unused_fallback_key_types, by name."""
        counts = await self._keys.counts(user_id, device_id)
        return {
            "device_one_time_keys_count": counts.one_time_keys,
            "device_unused_fallback_key_types": counts.unused_fallback_algorithms,
        }

    async def build(
        self, user_id: str, device_id: str | None, since: SyncToken | None, now: SyncToken
    ) -> E2eeSection:
        fields: dict[str, Any] = {}
        has_news = False
        position = now.to_device
        if device_id is not None:
            delivery = await self.deliver_to_device(
                user_id, device_id, since.to_device if since else 0, now.to_device, MAX_PER_SYNC
            )
            fields["to_device"] = {"events": delivery.events}
            has_news = bool(delivery.events)
            position = delivery.last_position
            fields.update(await self.key_counts(user_id, device_id))
        if since is not None:
            lists = await self.device_list_changes(user_id, since, now)
            # Empty lists are left out, and `device_lists` with them, as Synapse does: clients
            # (SyTest's device list tests among them) read a `changed` key as news.
            device_lists = {k: v for k, v in lists.to_json().items() if v}
            if device_lists:
                fields["device_lists"] = device_lists
            has_news = has_news or bool(device_lists)
        return E2eeSection(fields, has_news, position)

    async def deliver_to_device(
        self, user_id: str, device_id: str, since: int, until: int, limit: int
    ) -> Delivery:
        """The device's to-device messages in (since, until], at most `limit`, after deleting
        those `since` acknowledges."""
        return await self._to_device.deliver(user_id, device_id, since, until, limit)

    async def device_list_changes(
        self, user_id: str, since: SyncToken, now: SyncToken
    ) -> DeviceListChanges:
        """Whose devices changed, and who no longer shares a room, between two tokens."""
        if since.device_lists >= now.device_lists and since.room >= now.room:
            return DeviceListChanges([], [])
        return await self._device_lists.changes(
            user_id,
            since_room=since.room,
            until_room=now.room,
            since=since.device_lists,
            until=now.device_lists,
        )
