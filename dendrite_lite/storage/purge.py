"""Deleting a room's history (Synapse's admin purge_history_api.md) or the whole room (the
admin room deletion with purge), in one transaction each.

History purge, for the events below a depth (never the room's forward extremities):
- non-state events are deleted (local users' too only with `delete_local_events`; Synapse keeps
  them by default, as they may be the only copies);
- everything else below the point is kept as an outlier with no state group: every state event
  (the current state, the auth chains of what stays, and the states other events point at are
  all state events), the local events kept, and redactions of kept events. An outlier is no
  timeline event, so /messages and /sync stop at the purge point, and backfill (federation/
  backfill.py) treats "held without a state" as missing: it fetches these events again and
  puts them back in the timeline. The state group each had is kept in `purged_events`, so
  backfill knows the state after it (other servers may not: one that joined later holds no
  state before its join) when placing the events that follow it.
- the rows derived from purged events go with them: push actions (unread counts), relations,
  search rows, DAG edges; state groups no remaining event (or the room's current state) uses.
Stream positions of what stays never change, so sync tokens and receipts keep their meaning.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.storage.room_changes import touch

__all__ = [
    "PurgeCounts",
    "delete_purged_event",
    "delete_room",
    "purge_history",
    "select_purged_state_groups",
]


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    deleted: int  # event rows deleted
    outliers: int  # events kept out of the timeline (state, local, needed redactions)


SELECT_BELOW = (
    "SELECT event_id, stream_ordering, sender, state_key, state_group, outlier FROM events"
    " WHERE room_id = ? AND depth < ?"
    " AND event_id NOT IN (SELECT event_id FROM forward_extremities WHERE room_id = ?)"
)
SELECT_REDACTIONS_OF_KEPT = (
    "SELECT r.event_id FROM redactions r WHERE r.event_id IN (SELECT value FROM json_each(?))"
    " AND r.redacts NOT IN (SELECT value FROM json_each(?))"
)
SELECT_ROOM_GROUPS = "SELECT id, prev_group FROM state_groups WHERE room_id = ?"
SELECT_USED_GROUPS = (
    "SELECT DISTINCT state_group FROM events WHERE room_id = ? AND state_group IS NOT NULL"
    " UNION SELECT current_state_group FROM rooms"
    " WHERE room_id = ? AND current_state_group IS NOT NULL"
    " UNION SELECT p.state_group FROM purged_events p JOIN events e ON e.event_id = p.event_id"
    " WHERE e.room_id = ?"
)
INSERT_PURGED = (
    "INSERT OR REPLACE INTO purged_events (event_id, state_group) VALUES (?, ?)"
)
SELECT_PURGED = "SELECT event_id, state_group FROM purged_events WHERE event_id IN (SELECT value FROM json_each(?))"
DELETE_PURGED = "DELETE FROM purged_events WHERE event_id = ?"
_IN = "IN (SELECT value FROM json_each(?))"
MAKE_OUTLIERS = (
    f"UPDATE events SET outlier = 1, state_group = NULL WHERE event_id {_IN}"
)
# Rows keyed by event id that go with a deleted event.
_BY_EVENT_ID = (
    f"DELETE FROM purged_events WHERE event_id {_IN}",
    f"DELETE FROM event_edges WHERE event_id {_IN}",
    f"DELETE FROM event_auth WHERE event_id {_IN}",
    f"DELETE FROM redactions WHERE event_id {_IN}",
    f"DELETE FROM redactions WHERE redacts {_IN}",
    f"DELETE FROM event_auth_chain_positions WHERE event_id {_IN}",
    f"DELETE FROM event_auth_chain_reach WHERE event_id {_IN}",
    f"DELETE FROM events WHERE event_id {_IN}",
)
# Rows only timeline events have (outliers have none).
_TIMELINE_ONLY = (f"DELETE FROM event_relations WHERE event_id {_IN}",)
DELETE_SEARCH = f"DELETE FROM event_search WHERE rowid {_IN}"
DELETE_PUSH_ACTIONS = (
    f"DELETE FROM event_push_actions WHERE room_id = ? AND stream_ordering {_IN}"
)
DELETE_PUSH_QUEUE = (
    f"DELETE FROM push_queue WHERE room_id = ? AND stream_ordering {_IN}"
)
DELETE_GROUP_ENTRIES = f"DELETE FROM state_group_entries WHERE state_group {_IN}"
DELETE_GROUPS = f"DELETE FROM state_groups WHERE id {_IN}"


def _json(values: Iterable[object]) -> str:
    return json.dumps(list(values))


async def purge_history(
    conn: aiosqlite.Connection,
    room_id: str,
    *,
    below_depth: int,
    server_name: str,
    delete_local_events: bool,
) -> PurgeCounts:
    """Purge the room's events with a depth below `below_depth` (see the module docstring).
    The caller holds the room's lock: no event is being added meanwhile."""
    local = ":" + server_name
    async with conn.execute(SELECT_BELOW, (room_id, below_depth, room_id)) as cur:
        rows = await cur.fetchall()
    keep: list[str] = []
    delete: list[str] = []
    for event_id, _, sender, state_key, _, _ in rows:
        is_local = isinstance(sender, str) and sender.endswith(local)
        if state_key is not None or (is_local and not delete_local_events):
            keep.append(event_id)
        else:
            delete.append(event_id)
    if delete:
        # A redaction of an event that stays is needed: without it the event would show again.
        async with conn.execute(
            SELECT_REDACTIONS_OF_KEPT, (_json(delete), _json(delete))
        ) as cur:
            needed = {row[0] for row in await cur.fetchall()}
        keep += [e for e in delete if e in needed]
        delete = [e for e in delete if e not in needed]
    touched = _json([r[0] for r in rows])
    positions = _json([r[1] for r in rows])
    await conn.execute(DELETE_PUSH_ACTIONS, (room_id, positions))
    await conn.execute(DELETE_PUSH_QUEUE, (room_id, positions))
    await conn.execute(DELETE_SEARCH, (positions,))
    for sql in _TIMELINE_ONLY:
        await conn.execute(sql, (touched,))
    kept = set(keep)
    await conn.executemany(
        INSERT_PURGED,
        [(r[0], r[4]) for r in rows if r[0] in kept and not r[5] and r[4] is not None],
    )
    await conn.execute(MAKE_OUTLIERS, (_json(keep),))
    gone = _json(delete)
    for sql in _BY_EVENT_ID:
        await conn.execute(sql, (gone,))
    await _delete_unused_state_groups(conn, room_id)
    touch(room_id)
    return PurgeCounts(deleted=len(delete), outliers=len(keep))


async def _delete_unused_state_groups(conn: aiosqlite.Connection, room_id: str) -> None:
    """Delete the room's state groups that neither an event nor the current state uses, nor
    any used group builds on (a delta's parent)."""
    async with conn.execute(SELECT_ROOM_GROUPS, (room_id,)) as cur:
        parent = {row[0]: row[1] for row in await cur.fetchall()}
    async with conn.execute(SELECT_USED_GROUPS, (room_id, room_id, room_id)) as cur:
        todo = [row[0] for row in await cur.fetchall()]
    used: set[int] = set()
    while todo:
        group = todo.pop()
        if group in used:
            continue
        used.add(group)
        if parent.get(group) is not None:
            todo.append(parent[group])
    unused = _json(g for g in parent if g not in used)
    await conn.execute(DELETE_GROUP_ENTRIES, (unused,))
    await conn.execute(DELETE_GROUPS, (unused,))


# Everything of a room, in an order the foreign keys accept (state groups after their entries
# and children: one statement deletes them all).
_ROOM_EVENT_IDS = "SELECT event_id FROM events WHERE room_id = ?"
_ROOM_DERIVED: Sequence[str] = (
    "DELETE FROM event_push_actions WHERE room_id = ?",
    "DELETE FROM push_queue WHERE room_id = ?",
    "DELETE FROM event_relations WHERE room_id = ?",
    "DELETE FROM event_search WHERE room_id = ?",
)
_ROOM_ROWS: Sequence[str] = (
    "DELETE FROM forward_extremities WHERE room_id = ?",
    "DELETE FROM current_state WHERE room_id = ?",
    "DELETE FROM state_group_entries"
    + " WHERE state_group IN (SELECT id FROM state_groups WHERE room_id = ?)",
    "DELETE FROM state_groups WHERE room_id = ?",
    "DELETE FROM receipts WHERE room_id = ?",
    "DELETE FROM account_data WHERE room_id = ?",
    "DELETE FROM forgotten_rooms WHERE room_id = ?",
    "DELETE FROM room_aliases WHERE room_id = ?",
    "DELETE FROM rooms WHERE room_id = ?",
)


async def delete_room(conn: aiosqlite.Connection, room_id: str) -> int:
    """Delete every trace of the room we hold (its events, state, aliases, receipts, per-room
    account data, unread counts); returns how many events went. Blocking is kept: it is about
    the room id, not what we held of it."""
    async with conn.execute(_ROOM_EVENT_IDS, (room_id,)) as cur:
        ids = _json(row[0] for row in await cur.fetchall())
    for sql in _ROOM_DERIVED:
        await conn.execute(sql, (room_id,))
    for sql in _BY_EVENT_ID:
        await conn.execute(sql, (ids,))
    for sql in _ROOM_ROWS:
        await conn.execute(sql, (room_id,))
    touch(room_id)
    return len(json.loads(ids))


async def select_purged_state_groups(
    conn: aiosqlite.Connection, event_ids: Iterable[str]
) -> dict[str, int]:
    """event id -> the state group (the state after it) a purged event had in the timeline."""
    async with conn.execute(SELECT_PURGED, (_json(event_ids),)) as cur:
        return {row[0]: int(row[1]) for row in await cur.fetchall()}


async def delete_purged_event(conn: aiosqlite.Connection, event_id: str) -> None:
    """The event is back in the timeline (backfilled again): its own state group serves now."""
    await conn.execute(DELETE_PURGED, (event_id,))
