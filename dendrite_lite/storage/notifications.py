"""Push actions (unread notification counts) and what evaluating push rules needs to read.

event_push_actions (migrations 0005, 0012: keyed by room, stream position, user) has a row per (local user, event) their push rules said
"notify" for, with the event's thread (migration 0011: "main" or the thread root's event id).
A row is read once the user's m.read or m.read.private receipt (receipts table, migration 0006)
reaches its event, either an unthreaded receipt or one in the row's own thread (push.md
§Marking notifications as read, receipts.md §Threaded read receipts): a receipt resets the
counts without rewriting any push action row, and a threaded receipt leaves other threads alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "insert_push_actions",
    "NotificationRow",
    "implied_actions",
    "select_notifications",
    "select_notifications_after",
    "select_unread_counts",
    "select_unread_counts_by_thread",
    "MAIN_THREAD",
    "select_push_context",
    "select_push_rule_documents",
]

# The users of one (room, position, highlight) as a JSON array that SQLite expands itself: one
# statement per event instead of binding four parameters per member from Python.
INSERT_USERS = (
    "INSERT OR IGNORE INTO event_push_actions"
    " (user_id, room_id, stream_ordering, highlight, thread_id, actions)"
    " SELECT value, ?, ?, ?, ?, ? FROM json_each(?)"
)
# Per (room, thread): the rows after the furthest receipt that covers them, an unthreaded one
# ('') or one of the row's thread, and after the user's current join (`joins`: the first join
# since their last other membership, so a profile change is not a join): what came before,
# while invited or before a leave, never counts, as in Synapse. The user's read positions are computed once per (room,
# thread) (`reads`), and each room's rows are range-scanned from its unthreaded position (below
# it everything is read whatever the thread), instead of a receipt lookup per row.
SELECT_COUNTS = """
WITH reads AS (
  SELECT r.room_id, r.thread_id, MAX(e.stream_ordering) AS pos FROM receipts r
  JOIN events e ON e.event_id = r.event_id
  WHERE r.user_id = ?1 AND r.room_id IN (SELECT value FROM json_each(?2))
  AND r.receipt_type IN ('m.read', 'm.read.private') GROUP BY r.room_id, r.thread_id
), joins AS (
  SELECT j.value AS room_id, (
    SELECT MIN(m.stream_ordering) FROM events m
    WHERE m.room_id = j.value AND m.type = 'm.room.member' AND m.state_key = ?1
    AND m.outlier = 0 AND m.rejected_reason IS NULL
    AND json_extract(m.json, '$.content.membership') = 'join'
    AND m.stream_ordering > COALESCE((
      SELECT MAX(n.stream_ordering) FROM events n
      WHERE n.room_id = j.value AND n.type = 'm.room.member' AND n.state_key = ?1
      AND n.outlier = 0 AND n.rejected_reason IS NULL
      AND json_extract(n.json, '$.content.membership') != 'join'), -9223372036854775807)
  ) AS pos FROM json_each(?2) j
), floors AS (
  SELECT j.room_id, MAX(COALESCE(
    (SELECT pos FROM reads WHERE reads.room_id = j.room_id AND reads.thread_id = ''),
    -9223372036854775807), COALESCE(j.pos, -9223372036854775807)) AS floor FROM joins j
)
SELECT a.room_id, a.thread_id, COUNT(*), SUM(a.highlight)
FROM floors f JOIN event_push_actions a
  ON a.room_id = f.room_id AND a.stream_ordering > f.floor AND a.user_id = ?1
LEFT JOIN reads t ON t.room_id = a.room_id AND t.thread_id = a.thread_id
WHERE t.pos IS NULL OR a.stream_ordering > t.pos
GROUP BY a.room_id, a.thread_id
"""
MAIN_THREAD = "main"
_CHUNK = 400
# A user's rows, range-scanned per room of the user (the key starts with the room), each marked
# read as the unread counts above decide it. GET /notifications reads them newest first, the
# email notifier (users/email_notifier.py) oldest first after its position.
_NOTIFICATION_ROWS = """
SELECT a.room_id, e.event_id, a.highlight, a.actions, e.origin_server_ts, a.stream_ordering,
  EXISTS (
    SELECT 1 FROM receipts r JOIN events re ON re.event_id = r.event_id
    WHERE r.room_id = a.room_id AND r.user_id = ?1
    AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', a.thread_id)
    AND re.stream_ordering >= a.stream_ordering
  )
FROM event_push_actions a JOIN events e ON e.stream_ordering = a.stream_ordering
WHERE a.room_id IN (SELECT value FROM json_each(?2)) AND a.user_id = ?1
"""
SELECT_NOTIFICATIONS = _NOTIFICATION_ROWS + (
    "AND a.stream_ordering < ?3 AND (?4 = 0 OR a.highlight = 1)"
    " ORDER BY a.stream_ordering DESC LIMIT ?5"
)
SELECT_NOTIFICATIONS_AFTER = _NOTIFICATION_ROWS + (
    "AND a.stream_ordering > ?3 ORDER BY a.stream_ordering LIMIT ?4"
)


def implied_actions(highlight: bool) -> list[Any]:
    """What a NULL `actions` means: the default rules' actions for the highlight flag (a plain
    message's, a mention's). Rows whose actions are exactly these store NULL, so the common
    case (every member of a big room told of a message) writes no JSON per member."""
    if not highlight:
        return ["notify"]
    return [
        "notify", {"set_tweak": "highlight", "value": True},
        {"set_tweak": "sound", "value": "default"},
    ]


@dataclass(frozen=True, slots=True)
class NotificationRow:
    room_id: str
    event_id: str
    highlight: bool
    actions: list[Any]
    origin_server_ts: int
    stream_ordering: int
    read: bool


async def insert_push_actions(
    conn: aiosqlite.Connection,
    rows: Iterable[tuple[str, str, int, bool, str] | tuple[str, str, int, bool, str, str | None]],
) -> None:
    """(user_id, room_id, stream_ordering, highlight, thread_id[, actions]) for each
    notification; thread_id is MAIN_THREAD or the thread root's event id, actions the matching
    rule's actions as a JSON array (None: derived from highlight when read)."""
    users: dict[tuple[str, int, int, str, str | None], list[str]] = {}
    for user_id, room_id, position, highlight, thread_id, *rest in rows:
        key = (room_id, position, int(highlight), thread_id, rest[0] if rest else None)
        users.setdefault(key, []).append(user_id)
    for (room_id, position, flag, thread_id, actions), ids in users.items():
        await conn.execute(
            INSERT_USERS, (room_id, position, flag, thread_id, actions, json.dumps(ids))
        )


async def select_notifications(
    conn: aiosqlite.Connection,
    user_id: str,
    room_ids: Sequence[str],
    *,
    before: int,
    limit: int,
    only_highlight: bool,
) -> list[NotificationRow]:
    """The user's notifications in `room_ids` below stream position `before`, newest first."""
    args = (user_id, json.dumps(list(room_ids)), before, int(only_highlight), limit)
    async with conn.execute(SELECT_NOTIFICATIONS, args) as cur:
        return _notification_rows(await cur.fetchall())


async def select_notifications_after(
    conn: aiosqlite.Connection, user_id: str, room_ids: Sequence[str], *, after: int, limit: int
) -> list[NotificationRow]:
    """The user's notifications in `room_ids` above stream position `after`, oldest first."""
    args = (user_id, json.dumps(list(room_ids)), after, limit)
    async with conn.execute(SELECT_NOTIFICATIONS_AFTER, args) as cur:
        return _notification_rows(await cur.fetchall())


def _notification_rows(rows: Iterable[Any]) -> list[NotificationRow]:
    return [
        NotificationRow(
            r[0], r[1], bool(r[2]), json.loads(r[3]) if r[3] else implied_actions(bool(r[2])),
            int(r[4]), int(r[5]),
            bool(r[6]),
        )
        for r in rows
    ]


async def select_unread_counts_by_thread(
    conn: aiosqlite.Connection, user_id: str, room_ids: Sequence[str]
) -> dict[str, dict[str, tuple[int, int]]]:
    """room_id -> {thread_id: (notification_count, highlight_count)} of the unread rows; only
    threads with unread rows appear (a room with none maps to {})."""
    out: dict[str, dict[str, tuple[int, int]]] = {r: {} for r in room_ids}
    if not out:
        return out
    async with conn.execute(SELECT_COUNTS, (user_id, json.dumps(list(out)))) as cur:
        for row in await cur.fetchall():
            out[row[0]][row[1]] = (int(row[2]), int(row[3] or 0))
    return out


async def select_unread_counts(
    conn: aiosqlite.Connection, user_id: str, room_ids: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """room_id -> (notification_count, highlight_count) of the whole room, every thread
    included (each read up to its own receipts)."""
    by_thread = await select_unread_counts_by_thread(conn, user_id, room_ids)
    return {
        room_id: (sum(n for n, _ in threads.values()), sum(h for _, h in threads.values()))
        for room_id, threads in by_thread.items()
    }


async def select_push_context(
    conn: aiosqlite.Connection, room_id: str
) -> tuple[list[tuple[str, str | None]], dict[str, tuple[str, str]]]:
    """What evaluating push rules in a room needs from its current state, in one query:
    ([(joined user_id, displayname)], {"m.room.create"/"m.room.power_levels": (json, version)})."""
    sql = (
        "SELECT cs.type, cs.state_key, CASE WHEN cs.type = 'm.room.member'"
        " THEN json_extract(e.json, '$.content.displayname') ELSE e.json END, e.room_version"
        " FROM current_state cs JOIN events e ON e.event_id = cs.event_id WHERE cs.room_id = ?"
        " AND ((cs.type = 'm.room.member' AND cs.membership = 'join')"
        " OR (cs.type IN ('m.room.create', 'm.room.power_levels') AND cs.state_key = ''))"
    )
    members: list[tuple[str, str | None]] = []
    others: dict[str, tuple[str, str]] = {}
    async with conn.execute(sql, (room_id,)) as cur:
        for row in await cur.fetchall():
            if row[0] == "m.room.member":
                members.append((row[1], row[2] if isinstance(row[2], str) else None))
            else:
                others[row[0]] = (row[2], row[3])
    return members, others


async def select_push_rule_documents(
    conn: aiosqlite.Connection, user_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """user_id -> their stored push rules document (account data m.push_rules), if any."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(user_ids), _CHUNK):
        chunk = list(user_ids[start : start + _CHUNK])
        sql = (
            "SELECT user_id, content FROM account_data WHERE room_id = '' AND type = 'm.push_rules'"
            f" AND user_id IN ({','.join('?' * len(chunk))})"
        )
        async with conn.execute(sql, chunk) as cur:
            for row in await cur.fetchall():
                doc = json.loads(row[1])
                if isinstance(doc, dict):
                    out[row[0]] = doc
    return out
