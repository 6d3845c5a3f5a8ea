"""Devices service: list, rename and delete a user's devices (spec: §Device management).

Every deletion of devices goes through `delete_devices_in`, so whatever else a device owns (its
tokens, end-to-end keys, pending to-device messages, pushers and sliding sync connections) goes
with it in one place, and the deletion (like a rename, and a new device at login) enters the
device list stream for other users to hear of, keys or not, as in Synapse: a client tracking the
user re-queries and sees the device gone. The callers then wake the /sync of those users (e2ee/device_lists.py
`DeviceListService.changed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import e2e_keys as e2e_keys_table
from dendrite_lite.storage import pushers as pushers_table
from dendrite_lite.storage import sliding_sync as sliding_sync_table
from dendrite_lite.storage import to_device as to_device_table
from dendrite_lite.storage.devices import Device

__all__ = [
    "delete_all_devices",
    "delete_devices",
    "delete_devices_in",
    "device_json",
    "get_device",
    "list_devices",
    "rename_device",
    "whois",
]


def device_json(device: Device) -> dict[str, Any]:
    """A device as the spec's definitions/client_device.yaml shapes it (no nulls)."""
    body: dict[str, Any] = {"device_id": device.device_id}
    if device.display_name is not None:
        body["display_name"] = device.display_name
    if device.last_seen_ip is not None:
        body["last_seen_ip"] = device.last_seen_ip
    if device.last_seen_ts is not None:
        body["last_seen_ts"] = device.last_seen_ts
    return body


async def whois(storage: Storage, user_id: str) -> dict[str, Any]:
    """/admin/whois's `devices`: one session per device, with its last connection (we keep the
    last address, user agent and time of each device, so there is one connection). The user
    agent is null for a device that made no request since it logged in."""
    found = await list_devices(storage, user_id)
    out: dict[str, Any] = {}
    for device in found:
        connections = []
        if device.last_seen_ts is not None:
            connections.append({
                "ip": device.last_seen_ip,
                "last_seen": device.last_seen_ts,
                "user_agent": device.last_seen_user_agent,
            })
        out[device.device_id] = {"sessions": [{"connections": connections}]}
    return out


async def list_devices(storage: Storage, user_id: str) -> list[Device]:
    return await storage.db.read(lambda conn: devices_table.select_devices(conn, user_id))


async def get_device(storage: Storage, user_id: str, device_id: str) -> Device:
    """The device, or 404 M_NOT_FOUND (also for another user's device)."""
    device = await storage.db.read(
        lambda conn: devices_table.select_device(conn, user_id, device_id)
    )
    if device is None:
        raise MatrixError(Errcode.NOT_FOUND, "Unknown device")
    return device


async def rename_device(
    storage: Storage, user_id: str, device_id: str, display_name: str | None
) -> bool:
    """Set the display name (None: leave it as it is); 404 M_NOT_FOUND for an unknown device.
    True when the name changed: others see it in /keys/query and the user's other devices in
    GET /devices, so the rename entered the device list stream and the caller wakes them."""

    async def txn(conn: aiosqlite.Connection) -> bool | None:
        device = await devices_table.select_device(conn, user_id, device_id)
        if device is None:
            return None
        if display_name is None or display_name == device.display_name:
            return False
        await devices_table.update_device_display_name(conn, user_id, device_id, display_name)
        await device_lists_table.insert_device_list_change(conn, user_id, device_id)
        return True

    changed = await storage.db.write(txn)
    if changed is None:
        raise MatrixError(Errcode.NOT_FOUND, "Unknown device")
    return changed


async def delete_devices_in(
    conn: aiosqlite.Connection,
    user_id: str,
    device_ids: Iterable[str] | None = None,
    *,
    except_device_id: str | None = None,
) -> int:
    """Inside a write transaction: delete the listed devices of the user (None: all of them but
    except_device_id), with their tokens, keys and to-device messages. Unknown ids are skipped.
    Returns how many went."""
    if device_ids is None:
        device_ids = [
            d.device_id
            for d in await devices_table.select_devices(conn, user_id)
            if d.device_id != except_device_id
        ]
    deleted = 0
    for device_id in dict.fromkeys(device_ids):
        if await devices_table.delete_device(conn, user_id, device_id):
            deleted += 1
            await _forget_device_e2ee(conn, user_id, device_id)
            # A signed-out phone must stop getting its user's notifications.
            await pushers_table.delete_device_pushers(conn, user_id, device_id)
            await sliding_sync_table.delete_device_connections(conn, user_id, device_id)
    return deleted


async def _forget_device_e2ee(conn: aiosqlite.Connection, user_id: str, device_id: str) -> None:
    await to_device_table.delete_device_inbox(conn, user_id, device_id)
    await e2e_keys_table.delete_device_e2e_keys(conn, user_id, device_id)
    await device_lists_table.insert_device_list_change(conn, user_id, device_id)


async def delete_devices(storage: Storage, user_id: str, device_ids: Iterable[str]) -> int:
    """Delete the user's devices among device_ids (the spec answers 200 for devices already
    gone, so unknown ids are skipped). Returns how many were deleted."""
    ids = list(device_ids)
    return await storage.db.write(lambda conn: delete_devices_in(conn, user_id, ids))


async def delete_all_devices(
    storage: Storage, user_id: str, *, except_device_id: str | None = None
) -> int:
    """Delete every device of the user (optionally keeping one), with their tokens."""
    return await storage.db.write(
        lambda conn: delete_devices_in(conn, user_id, except_device_id=except_device_id)
    )
