"""Events, the room DAG (prev/auth edges), forward extremities, redactions and txn ids."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
from canonicaljson import encode_canonical_json

from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.storage import relations as relations_table
from dendrite_lite.storage import search as search_table
from dendrite_lite.storage.room_changes import touch

try:  # orjson is optional; json.loads is the fallback and fine for small rooms
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the install
    from json import loads as _loads

__all__ = [
    "StoredEvent",
    "insert_event",
    "select_event",
    "select_events",
    "select_events_at",
    "select_event_by_txn",
    "select_max_stream_ordering",
    "select_min_stream_ordering",
    "select_forward_extremities",
    "replace_forward_extremities",
    "select_room_events",
    "select_room_events_since",
    "insert_redaction",
    "update_event_pruned",
    "select_redactions_of",
    "select_all_redactions_of",
    "select_state_group_of",
]

_COLUMNS = (
    "stream_ordering, event_id, room_id, room_version, json, outlier, rejected_reason,"
    " soft_failed, state_group, txn_user_id, txn_device_id, txn_id"
)
INSERT_EVENT = (
    "INSERT INTO events (stream_ordering, event_id, room_id, room_version, type, state_key,"
    " sender, depth, origin_server_ts, json, outlier, rejected_reason, soft_failed, state_group,"
    " txn_user_id, txn_device_id, txn_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_EDGE = "INSERT OR IGNORE INTO event_edges (event_id, prev_event_id) VALUES (?, ?)"
INSERT_AUTH = "INSERT OR IGNORE INTO event_auth (event_id, auth_event_id) VALUES (?, ?)"
SELECT_EVENT = f"SELECT {_COLUMNS} FROM events WHERE event_id = ?"
SELECT_BY_TXN = (
    f"SELECT {_COLUMNS} FROM events"
    " WHERE txn_user_id = ? AND txn_device_id = ? AND txn_id = ?"
)
SELECT_MAX_STREAM = "SELECT COALESCE(MAX(stream_ordering), 0) FROM events"
SELECT_MIN_STREAM = "SELECT COALESCE(MIN(stream_ordering), 0) FROM events"
SELECT_EXTREMITIES = (
    "SELECT f.event_id, e.depth FROM forward_extremities f"
    " JOIN events e ON e.event_id = f.event_id WHERE f.room_id = ? ORDER BY e.depth DESC, f.event_id"
)
UPDATE_JSON = "UPDATE events SET json = ? WHERE event_id = ?"
DELETE_EXTREMITY = "DELETE FROM forward_extremities WHERE room_id = ? AND event_id = ?"
INSERT_EXTREMITY = "INSERT OR IGNORE INTO forward_extremities (room_id, event_id) VALUES (?, ?)"
INSERT_REDACTION = "INSERT OR IGNORE INTO redactions (event_id, redacts) VALUES (?, ?)"
SELECT_REDACTIONS_OF = (
    "SELECT r.redacts, r.event_id FROM redactions r JOIN events e ON e.event_id = r.event_id"
    " WHERE e.rejected_reason IS NULL AND r.redacts IN ({})"
)
SELECT_ALL_REDACTIONS_OF = (
    "SELECT r.redacts, r.event_id FROM redactions r JOIN events e ON e.event_id = r.event_id"
    " WHERE e.rejected_reason IS NULL AND r.redacts IN ({}) ORDER BY e.stream_ordering"
)
SELECT_STATE_GROUP_OF = "SELECT state_group FROM events WHERE event_id = ?"
SELECT_IS_REDACTED = (
    "SELECT 1 FROM redactions r JOIN events e ON e.event_id = r.event_id"
    " WHERE r.redacts = ? AND e.rejected_reason IS NULL LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: Event
    stream_ordering: int
    outlier: bool
    soft_failed: bool
    state_group: int | None
    txn_user_id: str | None
    txn_device_id: str | None
    txn_id: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredEvent:
        event = Event(
            _loads(row["json"]),
            get_room_version(row["room_version"]),
            row["event_id"],
            room_id=row["room_id"],
            rejected_reason=row["rejected_reason"],
        )
        return cls(
            event=event,
            stream_ordering=row["stream_ordering"],
            outlier=bool(row["outlier"]),
            soft_failed=bool(row["soft_failed"]),
            state_group=row["state_group"],
            txn_user_id=row["txn_user_id"],
            txn_device_id=row["txn_device_id"],
            txn_id=row["txn_id"],
        )


async def insert_event(
    conn: aiosqlite.Connection,
    event: Event,
    *,
    stream_ordering: int | None = None,
    outlier: bool = False,
    soft_failed: bool = False,
    state_group: int | None = None,
    txn: tuple[str, str, str] | None = None,
) -> int:
    """Insert an event and its DAG edges; return its stream position.

    stream_ordering None takes the next live position; backfill passes negative positions.
    """
    txn_user, txn_device, txn_id = txn if txn is not None else (None, None, None)
    cur = await conn.execute(
        INSERT_EVENT,
        (
            stream_ordering,
            event.event_id,
            event.room_id,
            event.room_version.identifier,
            event.type,
            event.state_key,
            event.sender,
            event.depth,
            event.origin_server_ts,
            encode_canonical_json(event.pdu).decode(),
            int(outlier),
            event.rejected_reason,
            int(soft_failed),
            state_group,
            txn_user,
            txn_device,
            txn_id,
        ),
    )
    position = cur.lastrowid
    assert position is not None
    await conn.executemany(INSERT_EDGE, [(event.event_id, p) for p in event.prev_event_ids])
    await conn.executemany(INSERT_AUTH, [(event.event_id, a) for a in event.auth_event_ids])
    if not outlier and not soft_failed and event.rejected_reason is None:
        await _index_event(conn, event, position)
    return position


async def _index_event(conn: aiosqlite.Connection, event: Event, position: int) -> None:
    """Relations and search text of a timeline event, in its own transaction, unless a
    redaction of it arrived first (over federation a redaction may precede its target)."""
    if "m.relates_to" not in event.content and event.type not in search_table.SEARCH_KEYS:
        return
    async with conn.execute(SELECT_IS_REDACTED, (event.event_id,)) as cur:
        if await cur.fetchone() is not None:
            return
    await relations_table.insert_relation(conn, event, position)
    await search_table.insert_search_row(conn, event, position)


async def select_event(conn: aiosqlite.Connection, event_id: str) -> StoredEvent | None:
    async with conn.execute(SELECT_EVENT, (event_id,)) as cur:
        row = await cur.fetchone()
    return StoredEvent.from_row(row) if row is not None else None


async def select_events(
    conn: aiosqlite.Connection, event_ids: Iterable[str]
) -> dict[str, StoredEvent]:
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, StoredEvent] = {}
    # SQLite limits bound parameters (32766 by default); chunk to stay well under.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"
        async with conn.execute(sql, chunk) as cur:
            for row in await cur.fetchall():
                found[row["event_id"]] = StoredEvent.from_row(row)
    return found


async def select_events_at(
    conn: aiosqlite.Connection, positions: Sequence[int]
) -> dict[int, StoredEvent]:
    """stream position -> the event there (search hits are keyed by position)."""
    found: dict[int, StoredEvent] = {}
    for start in range(0, len(positions), 500):
        chunk = list(positions[start : start + 500])
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_ordering IN ({','.join('?' * len(chunk))})"
        async with conn.execute(sql, chunk) as cur:
            for row in await cur.fetchall():
                found[row["stream_ordering"]] = StoredEvent.from_row(row)
    return found


async def select_memberships(
    conn: aiosqlite.Connection, event_ids: Iterable[str]
) -> dict[str, str | None]:
    """event id -> content.membership (None where it is not a string) of the m.room.member
    events among `event_ids`; other and unknown ids are left out. Reads one field instead of
    parsing whole events: joining a big room asks this for every member."""
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = (
            "SELECT event_id, json_extract(json, '$.content.membership') FROM events"
            f" WHERE type = 'm.room.member' AND event_id IN ({','.join('?' * len(chunk))})"
        )
        async with conn.execute(sql, chunk) as cur:
            for event_id, membership in await cur.fetchall():
                found[event_id] = membership if isinstance(membership, str) else None
    return found


async def select_event_by_txn(
    conn: aiosqlite.Connection, user_id: str, device_id: str, txn_id: str
) -> StoredEvent | None:
    async with conn.execute(SELECT_BY_TXN, (user_id, device_id, txn_id)) as cur:
        row = await cur.fetchone()
    return StoredEvent.from_row(row) if row is not None else None


async def select_max_stream_ordering(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_MAX_STREAM) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_min_stream_ordering(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_MIN_STREAM) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_forward_extremities(
    conn: aiosqlite.Connection, room_id: str
) -> list[tuple[str, int]]:
    """(event_id, depth) of the room's forward extremities, deepest first."""
    async with conn.execute(SELECT_EXTREMITIES, (room_id,)) as cur:
        return [(row[0], int(row[1])) for row in await cur.fetchall()]


async def replace_forward_extremities(
    conn: aiosqlite.Connection, room_id: str, *, remove: Iterable[str], add: Iterable[str]
) -> None:
    touch(room_id)
    await conn.executemany(DELETE_EXTREMITY, [(room_id, e) for e in remove])
    await conn.executemany(INSERT_EXTREMITY, [(room_id, e) for e in add])


async def select_room_events(
    conn: aiosqlite.Connection,
    room_id: str,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int,
    backwards: bool,
) -> list[StoredEvent]:
    """Timeline events (not outliers) of a room strictly between two stream positions.

    backwards=True returns newest first, which is what /messages dir=b wants.
    """
    clauses = ["room_id = ?", "outlier = 0"]
    params: list[object] = [room_id]
    if before is not None:
        clauses.append("stream_ordering < ?")
        params.append(before)
    if after is not None:
        clauses.append("stream_ordering > ?")
        params.append(after)
    order = "DESC" if backwards else "ASC"
    sql = (
        f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)}"
        f" ORDER BY stream_ordering {order} LIMIT ?"
    )
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        return [StoredEvent.from_row(row) for row in await cur.fetchall()]


async def select_room_events_since(
    conn: aiosqlite.Connection, room_ids: Sequence[str], since: int, until: int
) -> list[StoredEvent]:
    """Timeline events in any of room_ids with since < stream_ordering <= until, oldest first."""
    if not room_ids:
        return []
    sql = (
        f"SELECT {_COLUMNS} FROM events WHERE outlier = 0 AND stream_ordering > ?"
        f" AND stream_ordering <= ? AND room_id IN ({','.join('?' * len(room_ids))})"
        " ORDER BY stream_ordering"
    )
    async with conn.execute(sql, [since, until, *room_ids]) as cur:
        return [StoredEvent.from_row(row) for row in await cur.fetchall()]


async def insert_redaction(conn: aiosqlite.Connection, event_id: str, redacts: str) -> None:
    """Record an accepted redaction. Its target stops relating to anything (redaction strips
    m.relates_to) and leaves the search index."""
    await conn.execute(INSERT_REDACTION, (event_id, redacts))
    await relations_table.delete_relation(conn, redacts)
    await search_table.delete_search_row(conn, redacts)


async def update_event_pruned(
    conn: aiosqlite.Connection, event_id: str, pruned_pdu: Mapping[str, Any]
) -> None:
    """Replace an event's stored PDU by its redacted form for good (an expired MSC2228 event,
    as Synapse prunes it). Like a redaction, it stops relating to anything and leaves the
    search index."""
    await conn.execute(UPDATE_JSON, (encode_canonical_json(pruned_pdu).decode(), event_id))
    await relations_table.delete_relation(conn, event_id)
    await search_table.delete_search_row(conn, event_id)


async def select_redactions_of(
    conn: aiosqlite.Connection, event_ids: Sequence[str]
) -> dict[str, str]:
    """redacted event id -> id of a (non-rejected) redaction event pointing at it."""
    if not event_ids:
        return {}
    sql = SELECT_REDACTIONS_OF.format(",".join("?" * len(event_ids)))
    async with conn.execute(sql, list(event_ids)) as cur:
        return {row[0]: row[1] for row in await cur.fetchall()}


async def select_all_redactions_of(
    conn: aiosqlite.Connection, event_ids: Sequence[str]
) -> dict[str, list[str]]:
    """redacted event id -> ids of every (non-rejected) redaction pointing at it, oldest
    first: a reader that finds one invalid (a spoofed one) can still apply a later one."""
    out: dict[str, list[str]] = {}
    if not event_ids:
        return out
    sql = SELECT_ALL_REDACTIONS_OF.format(",".join("?" * len(event_ids)))
    async with conn.execute(sql, list(event_ids)) as cur:
        for target, redaction in await cur.fetchall():
            out.setdefault(target, []).append(redaction)
    return out


async def select_state_group_of(conn: aiosqlite.Connection, event_id: str) -> int | None:
    async with conn.execute(SELECT_STATE_GROUP_OF, (event_id,)) as cur:
        row = await cur.fetchone()
    return row[0] if row is not None else None
