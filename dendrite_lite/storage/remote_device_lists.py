"""End-to-end encryption over federation (schema in migrations/0018_e2ee_federation.sql):

- the remote device list cache: which other servers' users' lists we keep (their keys are rows
  of e2e_device_keys and e2e_cross_signing_keys, 0014), at which m.device_list_update stream
  id, and whether they are stale;
- the outbound position: how far our device list changes became EDUs for other servers, and
  the reads that build those EDUs (a user's stream ids, for `stream_id` and `prev_id`);
- the m.direct_to_device message ids already delivered (inbound idempotency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.storage.e2e_keys import encode

__all__ = [
    "DeviceListChange",
    "RemoteList",
    "delete_remote_list",
    "insert_inbound_message_id",
    "mark_remote_lists_stale",
    "replace_remote_device",
    "replace_remote_device_keys",
    "select_changes_after",
    "select_last_device_change",
    "select_latest_device_change",
    "select_servers_sharing_other_rooms",
    "select_outbound_position",
    "select_prev_device_change",
    "select_remote_lists",
    "update_outbound_position",
    "upsert_remote_list",
]

_CHUNK = 400
# Message ids are remembered this long: senders retry a transaction for hours, not days.
INBOUND_ID_LIFETIME_MS = 24 * 3600 * 1000

UPSERT_LIST = (
    "INSERT INTO remote_device_lists (user_id, stream_id, stale) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, stale = excluded.stale"
)
MARK_STALE = "UPDATE remote_device_lists SET stale = 1 WHERE user_id = ?"
DELETE_LIST = "DELETE FROM remote_device_lists WHERE user_id = ?"
DELETE_REMOTE_KEYS = [
    f"DELETE FROM {table} WHERE user_id = ?"
    for table in ("e2e_device_keys", "e2e_cross_signing_keys")
]
INSERT_REMOTE_KEYS = (
    "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json"
)
SELECT_OUTBOUND = "SELECT stream_id FROM device_list_outbound WHERE id = 1"
UPDATE_OUTBOUND = "UPDATE device_list_outbound SET stream_id = ? WHERE id = 1"
SELECT_CHANGES_AFTER = (
    "SELECT stream_id, user_id, device_id FROM device_list_changes"
    " WHERE stream_id > ? AND seen_by IS NULL ORDER BY stream_id LIMIT ?"
)  # a change seen by one of our users only (0023) never leaves the server
# device_id NULL rows are cross-signing changes, sent as m.signing_key_update: not part of the
# m.device_list_update chain.
SELECT_PREV_DEVICE_CHANGE = (
    "SELECT MAX(stream_id) FROM device_list_changes"
    " WHERE user_id = ? AND device_id IS NOT NULL AND stream_id < ?"
)
SELECT_LAST_DEVICE_CHANGE = (
    "SELECT MAX(stream_id) FROM device_list_changes WHERE user_id = ? AND device_id IS NOT NULL"
)
SELECT_LATEST_DEVICE_CHANGE = (
    "SELECT stream_id, user_id, device_id FROM device_list_changes"
    " WHERE user_id = ? AND device_id IS NOT NULL ORDER BY stream_id DESC LIMIT 1"
)
# The server name of a user id is everything after its first colon.
SELECT_SERVERS_SHARING_OTHER_ROOMS = (
    "SELECT DISTINCT substr(other.state_key, instr(other.state_key, ':') + 1)"
    " FROM current_state AS mine JOIN current_state AS other ON other.room_id = mine.room_id"
    " WHERE mine.state_key = ? AND mine.type = 'm.room.member' AND mine.membership = 'join'"
    " AND mine.room_id != ? AND other.type = 'm.room.member' AND other.membership = 'join'"
)
PRUNE_INBOUND_IDS = "DELETE FROM to_device_inbound_ids WHERE received_ts < ?"
INSERT_INBOUND_ID = (
    "INSERT INTO to_device_inbound_ids (origin, message_id, received_ts) VALUES (?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class RemoteList:
    user_id: str
    stream_id: int | None
    stale: bool


@dataclass(frozen=True, slots=True)
class DeviceListChange:
    stream_id: int
    user_id: str
    device_id: str | None  # None: the user's cross-signing keys


async def select_remote_lists(
    conn: aiosqlite.Connection, user_ids: Sequence[str]
) -> dict[str, RemoteList]:
    out: dict[str, RemoteList] = {}
    for start in range(0, len(user_ids), _CHUNK):
        chunk = list(user_ids[start : start + _CHUNK])
        sql = (
            "SELECT user_id, stream_id, stale FROM remote_device_lists"
            f" WHERE user_id IN ({','.join('?' * len(chunk))})"
        )
        async with conn.execute(sql, chunk) as cur:
            for user_id, stream_id, stale in await cur.fetchall():
                out[user_id] = RemoteList(user_id, stream_id, bool(stale))
    return out


async def upsert_remote_list(
    conn: aiosqlite.Connection, user_id: str, stream_id: int | None, *, stale: bool = False
) -> None:
    await conn.execute(UPSERT_LIST, (user_id, stream_id, int(stale)))


async def mark_remote_lists_stale(conn: aiosqlite.Connection, user_ids: Iterable[str]) -> None:
    """Cached lists of these users are asked for again at the next /keys/query (users without
    a cached list are skipped)."""
    await conn.executemany(MARK_STALE, [(u,) for u in user_ids])


async def delete_remote_list(conn: aiosqlite.Connection, user_id: str) -> None:
    """Forget a remote user's cached list and keys."""
    await conn.execute(DELETE_LIST, (user_id,))
    for sql in DELETE_REMOTE_KEYS:
        await conn.execute(sql, (user_id,))


async def replace_remote_device_keys(
    conn: aiosqlite.Connection,
    user_id: str,
    devices: Mapping[str, dict[str, Any]],
    cross_signing: Mapping[str, dict[str, Any]],
) -> None:
    """A remote user's whole list as their server answered it: device id -> device keys (with
    `unsigned` as received), key type (master, self_signing) -> cross-signing key."""
    for sql in DELETE_REMOTE_KEYS:
        await conn.execute(sql, (user_id,))
    await conn.executemany(
        INSERT_REMOTE_KEYS, [(user_id, d, encode(keys)) for d, keys in devices.items()]
    )
    await conn.executemany(
        "INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES (?, ?, ?)",
        [(user_id, key_type, encode(key)) for key_type, key in cross_signing.items()],
    )


async def replace_remote_device(
    conn: aiosqlite.Connection, user_id: str, device_id: str, keys: dict[str, Any]
) -> None:
    """One remote device's keys, as an m.device_list_update brought them."""
    await conn.execute(INSERT_REMOTE_KEYS, (user_id, device_id, encode(keys)))


async def select_outbound_position(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_OUTBOUND) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def update_outbound_position(conn: aiosqlite.Connection, stream_id: int) -> None:
    await conn.execute(UPDATE_OUTBOUND, (stream_id,))


async def select_changes_after(
    conn: aiosqlite.Connection, position: int, limit: int
) -> list[DeviceListChange]:
    """Device list changes after `position`, oldest first (every user's: callers keep ours)."""
    async with conn.execute(SELECT_CHANGES_AFTER, (position, limit)) as cur:
        return [DeviceListChange(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def select_prev_device_change(
    conn: aiosqlite.Connection, user_id: str, before: int
) -> int | None:
    """The stream id of the user's device change before `before` (the EDU's prev_id)."""
    async with conn.execute(SELECT_PREV_DEVICE_CHANGE, (user_id, before)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


async def select_last_device_change(conn: aiosqlite.Connection, user_id: str) -> int:
    """The stream id of the user's last device change (0 before any): /user/devices's stream_id."""
    async with conn.execute(SELECT_LAST_DEVICE_CHANGE, (user_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


async def select_latest_device_change(
    conn: aiosqlite.Connection, user_id: str
) -> DeviceListChange | None:
    """The user's last device change (not of cross-signing keys), or None."""
    async with conn.execute(SELECT_LATEST_DEVICE_CHANGE, (user_id,)) as cur:
        row = await cur.fetchone()
    return DeviceListChange(row[0], row[1], row[2]) if row is not None else None


async def select_servers_sharing_other_rooms(
    conn: aiosqlite.Connection, user_id: str, room_id: str
) -> set[str]:
    """The servers of everyone joined to a room, other than `room_id`, the user is joined to."""
    async with conn.execute(SELECT_SERVERS_SHARING_OTHER_ROOMS, (user_id, room_id)) as cur:
        return {row[0] for row in await cur.fetchall()}


async def insert_inbound_message_id(
    conn: aiosqlite.Connection, origin: str, message_id: str, now_ms: int
) -> bool:
    """Remember an m.direct_to_device message id; False when `origin` sent it before."""
    await conn.execute(PRUNE_INBOUND_IDS, (now_ms - INBOUND_ID_LIFETIME_MS,))
    cur = await conn.execute(INSERT_INBOUND_ID, (origin, message_id, now_ms))
    return cur.rowcount > 0
