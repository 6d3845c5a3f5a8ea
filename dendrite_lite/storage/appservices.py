"""Application services: each AS's outbox, transaction state and room lists.

Schema in migrations/0032_appservices.sql and 0033 (the device list cursor). Outbox rows leave
only with the AS's 200 for a transaction carrying them (`acknowledge_txn`), and the cursor into
the device list stream moves in that same write, so a restart or an AS outage loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.storage.device_lists import select_device_list_position

__all__ = [
    "AppserviceState",
    "OutboxRow",
    "acknowledge_txn",
    "advance_device_list_position",
    "begin_txn",
    "delete_outbox_except",
    "insert_outbox_edu",
    "insert_outbox_events",
    "select_appservice_listed_rooms",
    "select_joined_users",
    "select_key_counts",
    "select_local_room_mates",
    "select_outbox",
    "select_pending_counts",
    "select_room_aliases",
    "select_room_list",
    "select_state",
    "select_states",
    "start_device_list_positions",
    "update_failure",
    "update_room_list",
]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    position: int
    event_id: str | None
    edu_type: str | None
    content: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class AppserviceState:
    as_id: str
    last_txn_id: int = 0
    pending_txn_id: int = 0
    pending_up_to: int = 0
    last_success_ts: int | None = None
    last_failure_ts: int | None = None
    last_failure_reason: str | None = None
    retry_interval_ms: int = 0
    next_retry_ts: int = 0
    # MSC3202: the last device list stream position delivered (None: not started), and the
    # last one the transaction in flight carries (0: none).
    device_list_position: int | None = None
    pending_device_list_up_to: int = 0


INSERT_EVENT = "INSERT INTO appservice_outbox (as_id, event_id, queued_ts) VALUES (?, ?, ?)"
INSERT_EDU = (
    "INSERT INTO appservice_outbox (as_id, edu_type, edu_content, queued_ts) VALUES (?, ?, ?, ?)"
)
SELECT_OUTBOX = (
    "SELECT position, event_id, edu_type, edu_content FROM appservice_outbox"
    " WHERE as_id = ? AND position <= ? ORDER BY position LIMIT ?"
)
SELECT_COUNTS = "SELECT as_id, COUNT(*) FROM appservice_outbox GROUP BY as_id"
SELECT_STATE = "SELECT * FROM appservice_state WHERE as_id = ?"
SELECT_STATES = "SELECT * FROM appservice_state ORDER BY as_id"
ENSURE_STATE = "INSERT OR IGNORE INTO appservice_state (as_id) VALUES (?)"
BEGIN_TXN = (
    "UPDATE appservice_state SET last_txn_id = ?, pending_txn_id = ?, pending_up_to = ?,"
    " pending_device_list_up_to = ? WHERE as_id = ?"
)
DELETE_UP_TO = "DELETE FROM appservice_outbox WHERE as_id = ? AND position <= ?"
# The device list cursor moves to what the acknowledged transaction carried (SQLite evaluates
# every expression of an UPDATE on the row as it was).
ACK_TXN = (
    "UPDATE appservice_state SET pending_txn_id = 0, pending_up_to = 0, last_success_ts = ?,"
    " retry_interval_ms = 0, next_retry_ts = 0, pending_device_list_up_to = 0,"
    " device_list_position = CASE WHEN pending_device_list_up_to > 0"
    " THEN MAX(COALESCE(device_list_position, 0), pending_device_list_up_to)"
    " ELSE device_list_position END WHERE as_id = ?"
)
ADVANCE_DEVICE_LISTS = (
    "UPDATE appservice_state SET device_list_position = ?"
    " WHERE as_id = ? AND COALESCE(device_list_position, 0) < ?"
)
START_DEVICE_LISTS = (
    "UPDATE appservice_state SET device_list_position = ?"
    " WHERE as_id = ? AND device_list_position IS NULL"
)
STOP_DEVICE_LISTS = "UPDATE appservice_state SET device_list_position = NULL WHERE as_id = ?"
UPDATE_FAILURE = (
    "UPDATE appservice_state SET last_failure_ts = ?, last_failure_reason = ?,"
    " retry_interval_ms = ?, next_retry_ts = ? WHERE as_id = ?"
)
SELECT_ALIASES = "SELECT alias FROM room_aliases WHERE room_id = ?"
SELECT_JOINED = (
    "SELECT state_key FROM current_state"
    " WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'"
)
# Only the local room-mates: a member of a big room shares it with thousands of remote users.
SELECT_LOCAL_MATES = (
    "SELECT mine.state_key, other.state_key FROM current_state mine JOIN current_state other"
    " ON other.room_id = mine.room_id AND other.type = 'm.room.member'"
    " AND other.membership = 'join' AND substr(other.state_key, -?) = ?"
    " WHERE mine.type = 'm.room.member' AND mine.membership = 'join' AND mine.state_key IN ({})"
)
_CHUNK = 400


async def insert_outbox_events(
    conn: aiosqlite.Connection, rows: Iterable[tuple[str, str]], queued_ts: int
) -> None:
    """Queue (as_id, event_id) pairs in the order given (the send order)."""
    await conn.executemany(INSERT_EVENT, [(a, e, queued_ts) for a, e in rows])


async def insert_outbox_edu(
    conn: aiosqlite.Connection, as_id: str, edu_type: str, content: Mapping[str, Any], ts: int
) -> None:
    await conn.execute(INSERT_EDU, (as_id, edu_type, json.dumps(content), ts))


async def select_outbox(
    conn: aiosqlite.Connection, as_id: str, limit: int, up_to: int | None = None
) -> list[OutboxRow]:
    """The oldest rows of `as_id` (only those at or before `up_to`, when resending)."""
    bound = up_to if up_to else 2**62
    async with conn.execute(SELECT_OUTBOX, (as_id, bound, limit)) as cur:
        rows = await cur.fetchall()
    return [
        OutboxRow(r[0], r[1], r[2], json.loads(r[3]) if r[3] is not None else None) for r in rows
    ]


async def delete_outbox_except(conn: aiosqlite.Connection, as_ids: Iterable[str]) -> int:
    """Drop what waits for appservices no longer registered (or without a url); the count."""
    keep = sorted(set(as_ids))
    marks = ", ".join("?" * len(keep))
    where = f" WHERE as_id NOT IN ({marks})" if keep else ""
    cur = await conn.execute(f"DELETE FROM appservice_outbox{where}", keep)
    return int(cur.rowcount)


async def select_pending_counts(conn: aiosqlite.Connection) -> dict[str, int]:
    async with conn.execute(SELECT_COUNTS) as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}


def _state(row: Any) -> AppserviceState:
    return AppserviceState(*tuple(row))


async def select_state(conn: aiosqlite.Connection, as_id: str) -> AppserviceState:
    async with conn.execute(SELECT_STATE, (as_id,)) as cur:
        row = await cur.fetchone()
    return _state(row) if row is not None else AppserviceState(as_id)


async def select_states(conn: aiosqlite.Connection) -> dict[str, AppserviceState]:
    async with conn.execute(SELECT_STATES) as cur:
        return {r[0]: _state(r) for r in await cur.fetchall()}


async def begin_txn(
    conn: aiosqlite.Connection, as_id: str, up_to: int, device_lists_up_to: int = 0
) -> int:
    """Record a new transaction carrying rows up to `up_to` and device list changes up to
    `device_lists_up_to` (0: none); returns its id."""
    await conn.execute(ENSURE_STATE, (as_id,))
    state = await select_state(conn, as_id)
    txn_id = state.last_txn_id + 1
    await conn.execute(BEGIN_TXN, (txn_id, txn_id, up_to, device_lists_up_to, as_id))
    return txn_id


async def acknowledge_txn(conn: aiosqlite.Connection, as_id: str, up_to: int, now: int) -> None:
    """The AS took the transaction: its rows go, its device list cursor moves past what it
    carried, and the AS is healthy."""
    await conn.execute(ENSURE_STATE, (as_id,))
    await conn.execute(DELETE_UP_TO, (as_id, up_to))
    await conn.execute(ACK_TXN, (now, as_id))


async def advance_device_list_position(
    conn: aiosqlite.Connection, as_id: str, position: int
) -> None:
    """Changes up to `position` concern the AS in nothing: its cursor moves there unsent."""
    await conn.execute(ENSURE_STATE, (as_id,))
    await conn.execute(ADVANCE_DEVICE_LISTS, (position, as_id, position))


async def start_device_list_positions(
    conn: aiosqlite.Connection, with_lists: Iterable[str], without: Iterable[str]
) -> None:
    """At start: the ASes with MSC3202 device lists and no cursor yet start at the stream's
    position now (a new bridge does not get the server's whole history); the others lose
    theirs, so enabling device lists later starts there too."""
    now = await select_device_list_position(conn)
    for as_id in with_lists:
        await conn.execute(ENSURE_STATE, (as_id,))
        await conn.execute(START_DEVICE_LISTS, (now, as_id))
    for as_id in without:
        await conn.execute(STOP_DEVICE_LISTS, (as_id,))


async def update_failure(
    conn: aiosqlite.Connection, as_id: str, now: int, reason: str, interval_ms: int, retry_ts: int
) -> None:
    await conn.execute(ENSURE_STATE, (as_id,))
    await conn.execute(UPDATE_FAILURE, (now, reason, interval_ms, retry_ts, as_id))


async def select_room_aliases(conn: aiosqlite.Connection, room_id: str) -> list[str]:
    async with conn.execute(SELECT_ALIASES, (room_id,)) as cur:
        return [r[0] for r in await cur.fetchall()]


async def select_joined_users(conn: aiosqlite.Connection, room_id: str) -> list[str]:
    async with conn.execute(SELECT_JOINED, (room_id,)) as cur:
        return [r[0] for r in await cur.fetchall()]


async def select_local_room_mates(
    conn: aiosqlite.Connection, user_ids: Iterable[str], server_name: str
) -> dict[str, set[str]]:
    """For each of `user_ids`, the users of `server_name` joined to a room they are joined to
    (absent: none)."""
    users = sorted(set(user_ids))
    suffix = ":" + server_name
    mates: dict[str, set[str]] = {}
    for start in range(0, len(users), _CHUNK):
        chunk = users[start : start + _CHUNK]
        sql = SELECT_LOCAL_MATES.format(", ".join("?" * len(chunk)))
        async with conn.execute(sql, (len(suffix), suffix, *chunk)) as cur:
            for user_id, mate in await cur.fetchall():
                mates.setdefault(user_id, set()).add(mate)
    return mates


async def select_key_counts(
    conn: aiosqlite.Connection, user_ids: Iterable[str]
) -> tuple[dict[str, dict[str, dict[str, int]]], dict[str, dict[str, list[str]]]]:
    """MSC3202: (one-time key counts, unused fallback key algorithms), by user and device, of
    every device of `user_ids`."""
    from dendrite_lite.storage import devices as devices_table
    from dendrite_lite.storage import e2e_keys

    counts: dict[str, dict[str, dict[str, int]]] = {}
    fallbacks: dict[str, dict[str, list[str]]] = {}
    for user_id in sorted(set(user_ids)):
        for device in await devices_table.select_devices(conn, user_id):
            device_id = device.device_id
            counts.setdefault(user_id, {})[device_id] = {
                "signed_curve25519": 0,
                **await e2e_keys.count_one_time_keys(conn, user_id, device_id),
            }
            fallbacks.setdefault(user_id, {})[device_id] = (
                await e2e_keys.select_unused_fallback_algorithms(conn, user_id, device_id)
            )
    return counts, fallbacks


async def update_room_list(
    conn: aiosqlite.Connection, as_id: str, network_id: str, room_id: str, *, listed: bool
) -> None:
    """Publish the room in (listed) or remove it from the AS's list of `network_id`."""
    sql = (
        "INSERT OR IGNORE INTO appservice_room_list (as_id, network_id, room_id) VALUES (?, ?, ?)"
        if listed else
        "DELETE FROM appservice_room_list WHERE as_id = ? AND network_id = ? AND room_id = ?"
    )
    await conn.execute(sql, (as_id, network_id, room_id))


async def select_room_list(
    conn: aiosqlite.Connection, network_ids: Iterable[tuple[str, str]]
) -> list[str]:
    """The rooms published in the given (as_id, network_id) lists."""
    rooms: list[str] = []
    for as_id, network_id in network_ids:
        async with conn.execute(
            "SELECT room_id FROM appservice_room_list WHERE as_id = ? AND network_id = ?"
            " ORDER BY room_id", (as_id, network_id),
        ) as cur:
            rooms += [r[0] for r in await cur.fetchall() if r[0] not in rooms]
    return rooms


async def select_appservice_listed_rooms(conn: aiosqlite.Connection) -> set[str]:
    async with conn.execute("SELECT DISTINCT room_id FROM appservice_room_list") as cur:
        return {r[0] for r in await cur.fetchall()}
