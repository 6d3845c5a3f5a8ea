"""The delayed_events table: MSC4140 events waiting for their send time, schema in
migrations/0035_delayed_events.sql. The service deciding when they go is rooms.delayed_events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "DelayedEvent",
    "count_user_delayed_events",
    "delete_delayed_event",
    "delete_overridden_delayed_state",
    "delete_user_delayed_events",
    "insert_delayed_event",
    "select_delay_id_by_txn",
    "select_delayed_event",
    "select_due_delayed_events",
    "select_next_send_ts",
    "select_user_delayed_events",
    "update_restart_delayed_event",
]

_COLUMNS = (
    "delay_id, user_id, device_id, room_id, event_type, state_key, content, delay_ms, send_ts"
)
INSERT = (
    f"INSERT INTO delayed_events ({_COLUMNS}, txn_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_BY_TXN = (
    "SELECT delay_id FROM delayed_events WHERE user_id = ? AND device_id IS ? AND txn_id = ?"
)
COUNT_USER = "SELECT COUNT(*) FROM delayed_events WHERE user_id = ?"
SELECT_ONE = f"SELECT {_COLUMNS} FROM delayed_events WHERE delay_id = ?"
SELECT_USER = f"SELECT {_COLUMNS} FROM delayed_events WHERE user_id = ? ORDER BY send_ts"
SELECT_DUE = f"SELECT {_COLUMNS} FROM delayed_events WHERE send_ts <= ? ORDER BY send_ts LIMIT ?"
SELECT_NEXT = "SELECT MIN(send_ts) FROM delayed_events"
RESTART = "UPDATE delayed_events SET send_ts = ? + delay_ms WHERE delay_id = ?"
DELETE = "DELETE FROM delayed_events WHERE delay_id = ?"
DELETE_USER = "DELETE FROM delayed_events WHERE user_id = ?"
DELETE_OVERRIDDEN = (
    "DELETE FROM delayed_events WHERE room_id = ? AND event_type = ? AND state_key = ?"
    " AND user_id <> ?"
)


@dataclass(frozen=True, slots=True)
class DelayedEvent:
    delay_id: str
    user_id: str
    device_id: str | None
    room_id: str
    event_type: str
    state_key: str | None  # None: a message event
    content: dict[str, Any]
    delay_ms: int
    send_ts: int

    @property
    def running_since(self) -> int:
        """When its delay last (re)started (ms)."""
        return self.send_ts - self.delay_ms


def _row(row: Any) -> DelayedEvent:
    return DelayedEvent(
        row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), int(row[7]), int(row[8])
    )


async def insert_delayed_event(
    conn: aiosqlite.Connection, event: DelayedEvent, txn_id: str | None
) -> None:
    content = json.dumps(event.content, ensure_ascii=False, separators=(",", ":"))
    await conn.execute(INSERT, (
        event.delay_id, event.user_id, event.device_id, event.room_id, event.event_type,
        event.state_key, content, event.delay_ms, event.send_ts, txn_id,
    ))


async def select_delay_id_by_txn(
    conn: aiosqlite.Connection, user_id: str, device_id: str | None, txn_id: str
) -> str | None:
    """The pending delayed event an earlier request with this txn id scheduled, if any."""
    async with conn.execute(SELECT_BY_TXN, (user_id, device_id, txn_id)) as cur:
        row = await cur.fetchone()
    return row[0] if row is not None else None


async def count_user_delayed_events(conn: aiosqlite.Connection, user_id: str) -> int:
    async with conn.execute(COUNT_USER, (user_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_delayed_event(conn: aiosqlite.Connection, delay_id: str) -> DelayedEvent | None:
    async with conn.execute(SELECT_ONE, (delay_id,)) as cur:
        row = await cur.fetchone()
    return _row(row) if row is not None else None


async def select_user_delayed_events(conn: aiosqlite.Connection, user_id: str) -> list[DelayedEvent]:
    """The user's pending delayed events, the next to be sent first."""
    async with conn.execute(SELECT_USER, (user_id,)) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def select_due_delayed_events(
    conn: aiosqlite.Connection, now_ms: int, limit: int
) -> list[DelayedEvent]:
    """Delayed events due at now_ms, earliest first, at most `limit`."""
    async with conn.execute(SELECT_DUE, (now_ms, limit)) as cur:
        return [_row(r) for r in await cur.fetchall()]


async def select_next_send_ts(conn: aiosqlite.Connection) -> int | None:
    """The earliest send time scheduled, None when nothing is."""
    async with conn.execute(SELECT_NEXT) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


async def update_restart_delayed_event(
    conn: aiosqlite.Connection, delay_id: str, now_ms: int
) -> bool:
    """Its delay starts again from now_ms; False if there is no such delayed event."""
    cur = await conn.execute(RESTART, (now_ms, delay_id))
    return cur.rowcount == 1


async def delete_delayed_event(conn: aiosqlite.Connection, delay_id: str) -> bool:
    """False if there was no such delayed event."""
    cur = await conn.execute(DELETE, (delay_id,))
    return cur.rowcount == 1


async def delete_user_delayed_events(conn: aiosqlite.Connection, user_id: str) -> None:
    """A deactivated account's schedule goes with it (as Synapse's cancel_all_for_user)."""
    await conn.execute(DELETE_USER, (user_id,))


async def delete_overridden_delayed_state(
    conn: aiosqlite.Connection, room_id: str, event_type: str, state_key: str, sender: str
) -> int:
    """Drop other users' delayed events for this piece of state, which `sender` just set; how
    many."""
    cur = await conn.execute(DELETE_OVERRIDDEN, (room_id, event_type, state_key, sender))
    return cur.rowcount
