"""Device keys, one-time keys and fallback keys (schema in migrations/0014_e2ee.sql).

Key objects are stored as the client uploaded them (JSON text) and returned parsed. Nothing here
checks signatures or request shapes: e2ee/keys.py does, before it writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "ClaimedKey",
    "DeviceKeys",
    "claim_key",
    "count_one_time_keys",
    "delete_device_e2e_keys",
    "encode",
    "insert_one_time_keys",
    "select_device_keys",
    "select_one_time_key",
    "select_unused_fallback_algorithms",
    "upsert_device_keys",
    "upsert_fallback_key",
]

_CHUNK = 400

SELECT_DEVICE_KEYS = (
    "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM e2e_device_keys k"
    " LEFT JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
    " WHERE k.user_id = ?"
)
SELECT_ONE_DEVICE_KEYS = "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?"
UPSERT_DEVICE_KEYS = (
    "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json"
)
SELECT_OTK = (
    "SELECT key_json FROM e2e_one_time_keys"
    " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?"
)
INSERT_OTK = (
    "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)"
    " VALUES (?, ?, ?, ?, ?)"
)
COUNT_OTKS = (
    "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
    " GROUP BY algorithm"
)
# The oldest upload first (end_to_end_encryption.md / keys.yaml: "in the order uploaded").
CLAIM_OTK = (
    "DELETE FROM e2e_one_time_keys WHERE id = (SELECT id FROM e2e_one_time_keys"
    " WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY id LIMIT 1)"
    " RETURNING key_id, key_json"
)
SELECT_FALLBACK = (
    "SELECT key_id, key_json, used FROM e2e_fallback_keys"
    " WHERE user_id = ? AND device_id = ? AND algorithm = ?"
)
UPSERT_FALLBACK = (
    "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)"
    " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, device_id, algorithm)"
    " DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0"
)
MARK_FALLBACK_USED = (
    "UPDATE e2e_fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ?"
)
SELECT_UNUSED_FALLBACK = (
    "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0"
    " ORDER BY algorithm"
)
_DELETE_FOR_DEVICE = [
    f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?"
    for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys")
]


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    user_id: str
    device_id: str
    keys: dict[str, Any]  # the signed device keys object
    display_name: str | None  # None also for a device without a devices row (remote users)


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    key_id: str  # "<algorithm>:<key id>"
    key: Any  # a string (curve25519) or a signed key object


async def select_device_keys(
    conn: aiosqlite.Connection, user_id: str, device_ids: Sequence[str] = ()
) -> list[DeviceKeys]:
    """The user's devices with keys (only those in device_ids when it is not empty)."""
    wanted = set(device_ids)
    async with conn.execute(SELECT_DEVICE_KEYS, (user_id,)) as cur:
        rows = await cur.fetchall()
    return [
        DeviceKeys(r[0], r[1], json.loads(r[2]), r[3])
        for r in rows
        if not wanted or r[1] in wanted
    ]


async def upsert_device_keys(
    conn: aiosqlite.Connection, user_id: str, device_id: str, keys: dict[str, Any]
) -> bool:
    """Store the device keys; False (nothing written) when they equal the stored ones."""
    async with conn.execute(SELECT_ONE_DEVICE_KEYS, (user_id, device_id)) as cur:
        row = await cur.fetchone()
    if row is not None and json.loads(row[0]) == keys:
        return False
    await conn.execute(UPSERT_DEVICE_KEYS, (user_id, device_id, encode(keys)))
    return True


async def select_one_time_key(
    conn: aiosqlite.Connection, user_id: str, device_id: str, algorithm: str, key_id: str
) -> Any | None:
    """An unclaimed one-time key (parsed), or None."""
    async with conn.execute(SELECT_OTK, (user_id, device_id, algorithm, key_id)) as cur:
        row = await cur.fetchone()
    return json.loads(row[0]) if row is not None else None


async def insert_one_time_keys(
    conn: aiosqlite.Connection, user_id: str, device_id: str, keys: Sequence[tuple[str, str, Any]]
) -> None:
    """Add (algorithm, key_id, key) rows; the caller skipped those already stored."""
    await conn.executemany(
        INSERT_OTK, [(user_id, device_id, alg, kid, encode(key)) for alg, kid, key in keys]
    )


async def count_one_time_keys(
    conn: aiosqlite.Connection, user_id: str, device_id: str
) -> dict[str, int]:
    async with conn.execute(COUNT_OTKS, (user_id, device_id)) as cur:
        return {r[0]: int(r[1]) for r in await cur.fetchall()}


async def upsert_fallback_key(
    conn: aiosqlite.Connection, user_id: str, device_id: str, algorithm: str, key_id: str, key: Any
) -> None:
    """Replace the device's fallback key of this algorithm. Uploading the very same key again
    keeps its `used` mark: a client re-sending its current key has not replaced a used one."""
    async with conn.execute(SELECT_FALLBACK, (user_id, device_id, algorithm)) as cur:
        row = await cur.fetchone()
    if row is not None and row[0] == key_id and json.loads(row[1]) == key:
        return
    await conn.execute(UPSERT_FALLBACK, (user_id, device_id, algorithm, key_id, encode(key)))


async def select_unused_fallback_algorithms(
    conn: aiosqlite.Connection, user_id: str, device_id: str
) -> list[str]:
    async with conn.execute(SELECT_UNUSED_FALLBACK, (user_id, device_id)) as cur:
        return [r[0] for r in await cur.fetchall()]


async def claim_key(
    conn: aiosqlite.Connection, user_id: str, device_id: str, algorithm: str
) -> ClaimedKey | None:
    """Inside a write transaction: take the oldest one-time key (it is deleted, so no one else
    ever gets it), else hand out the fallback key and mark it used; None if neither exists."""
    async with conn.execute(CLAIM_OTK, (user_id, device_id, algorithm)) as cur:
        row = await cur.fetchone()
    if row is not None:
        return ClaimedKey(f"{algorithm}:{row[0]}", json.loads(row[1]))
    async with conn.execute(SELECT_FALLBACK, (user_id, device_id, algorithm)) as cur:
        fallback = await cur.fetchone()
    if fallback is None:
        return None
    if not fallback[2]:
        await conn.execute(MARK_FALLBACK_USED, (user_id, device_id, algorithm))
    return ClaimedKey(f"{algorithm}:{fallback[0]}", json.loads(fallback[1]))


async def delete_device_e2e_keys(conn: aiosqlite.Connection, user_id: str, device_id: str) -> bool:
    """Delete every key of the device; True if it had device keys (others must hear of it)."""
    had_keys = False
    for i, sql in enumerate(_DELETE_FOR_DEVICE):
        cur = await conn.execute(sql, (user_id, device_id))
        if i == 0:
            had_keys = cur.rowcount > 0
    return had_keys
