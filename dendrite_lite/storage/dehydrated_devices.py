"""Which device of a user is their dehydrated device (MSC3814), and its opaque `device_data`
(schema in migrations/0017_dehydrated_devices.sql).

The device, its keys and its to-device inbox live in the ordinary tables; deleting the device
row deletes the mark here through the foreign key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.storage.e2e_keys import encode

__all__ = ["DehydratedDevice", "select_dehydrated_device", "upsert_dehydrated_device"]

SELECT = "SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = ?"
UPSERT = (
    "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET"
    " device_id = excluded.device_id, device_data = excluded.device_data"
)


@dataclass(frozen=True, slots=True)
class DehydratedDevice:
    device_id: str
    device_data: dict[str, Any]


async def select_dehydrated_device(
    conn: aiosqlite.Connection, user_id: str
) -> DehydratedDevice | None:
    async with conn.execute(SELECT, (user_id,)) as cur:
        row = await cur.fetchone()
    return DehydratedDevice(row[0], json.loads(row[1])) if row is not None else None


async def upsert_dehydrated_device(
    conn: aiosqlite.Connection, user_id: str, device_id: str, device_data: dict[str, Any]
) -> None:
    """Mark the user's (existing) device as their dehydrated device, replacing any mark."""
    await conn.execute(UPSERT, (user_id, device_id, encode(device_data)))
