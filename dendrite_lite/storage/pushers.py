"""Pushers and the push delivery queue (schema in migrations/0016_push_reports.sql, the
pusher's device in 0021_pusher_devices.sql).

A pusher is keyed by (app_id, pushkey, user_id). push_queue holds the notifications of users
that have a pusher, written in the event's own transaction (`insert_push_queue`, from the
unread count hook) and deleted once delivered or given up on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "Pusher",
    "QueuedPush",
    "select_pushers",
    "select_pushers_of",
    "upsert_pusher",
    "delete_pusher",
    "delete_pushers",
    "delete_device_pushers",
    "insert_push_queue",
    "select_push_queue",
    "delete_push_queue",
]

_COLUMNS = (
    "user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang,"
    " data, pushkey_ts, device_id"
)
UPSERT = (
    f"INSERT INTO pushers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (app_id, pushkey, user_id) DO UPDATE SET kind = excluded.kind,"
    " app_display_name = excluded.app_display_name,"
    " device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag,"
    " lang = excluded.lang, data = excluded.data, pushkey_ts = excluded.pushkey_ts,"
    " device_id = excluded.device_id"
)
# The queue only takes rows of users with a pusher. The users notified of one event with the
# same actions go in as one JSON array that SQLite expands and checks against the pushers
# index itself: one statement per event, as for event_push_actions, not one per member.
INSERT_QUEUE = (
    "INSERT INTO push_queue (user_id, room_id, stream_ordering, actions)"
    " SELECT value, ?, ?, ? FROM json_each(?)"
    " WHERE value IN (SELECT user_id FROM pushers)"
)


@dataclass(frozen=True, slots=True)
class Pusher:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    pushkey_ts: int  # ms
    device_id: str | None = None  # the device that set it (None: set before migration 0021)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Pusher:
        return cls(*row[:8], json.loads(row[8]), int(row[9]), row[10])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class QueuedPush:
    id: int
    user_id: str
    room_id: str
    stream_ordering: int
    actions: list[Any]


async def select_pushers(conn: aiosqlite.Connection, user_id: str) -> list[Pusher]:
    sql = f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey"
    async with conn.execute(sql, (user_id,)) as cur:
        return [Pusher.from_row(r) for r in await cur.fetchall()]


async def select_pushers_of(
    conn: aiosqlite.Connection, user_ids: Iterable[str]
) -> dict[str, list[Pusher]]:
    out: dict[str, list[Pusher]] = {}
    for user_id in sorted(set(user_ids)):
        if found := await select_pushers(conn, user_id):
            out[user_id] = found
    return out


async def upsert_pusher(conn: aiosqlite.Connection, pusher: Pusher, *, append: bool) -> None:
    """Add or replace the user's pusher; without `append`, the same app_id and pushkey stop
    pushing for every other user (pusher.yaml: `append`)."""
    if not append:
        await conn.execute(
            "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?",
            (pusher.app_id, pusher.pushkey, pusher.user_id),
        )
    p = pusher
    await conn.execute(UPSERT, (
        p.user_id, p.app_id, p.pushkey, p.kind, p.app_display_name, p.device_display_name,
        p.profile_tag, p.lang, json.dumps(p.data), p.pushkey_ts, p.device_id,
    ))


async def delete_pusher(conn: aiosqlite.Connection, user_id: str, app_id: str, pushkey: str) -> None:
    await conn.execute(
        "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id = ?",
        (app_id, pushkey, user_id),
    )


async def delete_pushers(conn: aiosqlite.Connection, user_id: str) -> None:
    """Every pusher of the user (account deactivation, say)."""
    await conn.execute("DELETE FROM pushers WHERE user_id = ?", (user_id,))


async def delete_device_pushers(conn: aiosqlite.Connection, user_id: str, device_id: str) -> None:
    """The pushers a device set (the device is being deleted)."""
    await conn.execute(
        "DELETE FROM pushers WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )


async def insert_push_queue(
    conn: aiosqlite.Connection, rows: Iterable[tuple[str, str, int, str]]
) -> bool:
    """(user_id, room_id, stream_ordering, actions JSON) of new notifications; only rows of
    users with a pusher are kept. True when any was."""
    users: dict[tuple[str, int, str], list[str]] = {}
    for user_id, room_id, position, actions in rows:
        users.setdefault((room_id, position, actions), []).append(user_id)
    queued = False
    for (room_id, position, actions), ids in users.items():
        cur = await conn.execute(INSERT_QUEUE, (room_id, position, actions, json.dumps(ids)))
        queued = queued or cur.rowcount > 0
    return queued


async def select_push_queue(
    conn: aiosqlite.Connection, limit: int, skip_users: Sequence[str] = ()
) -> list[QueuedPush]:
    """The oldest queued pushes, leaving out those of `skip_users` (being delivered)."""
    skip = f" WHERE user_id NOT IN ({','.join('?' * len(skip_users))})" if skip_users else ""
    sql = (
        "SELECT id, user_id, room_id, stream_ordering, actions FROM push_queue"
        f"{skip} ORDER BY id LIMIT ?"
    )
    async with conn.execute(sql, (*skip_users, limit)) as cur:
        rows = await cur.fetchall()
    return [QueuedPush(int(r[0]), r[1], r[2], int(r[3]), json.loads(r[4])) for r in rows]


async def delete_push_queue(conn: aiosqlite.Connection, ids: Sequence[int]) -> None:
    await conn.executemany("DELETE FROM push_queue WHERE id = ?", [(i,) for i in ids])
