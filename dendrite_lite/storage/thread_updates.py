"""Which threads had new events in a stretch of the room stream (MSC4360 thread updates), read
from event_relations (migration 0015): a thread's update events are its m.thread children.

One row per thread: its newest child in the stretch (the thread's "latest update"), how many
children the stretch holds and the oldest of them. Threads come newest update first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

__all__ = ["ThreadUpdate", "select_thread_updates"]


@dataclass(frozen=True, slots=True)
class ThreadUpdate:
    room_id: str
    root_id: str
    latest: int  # stream position of the newest child in the stretch
    latest_id: str  # its event id
    count: int  # children in the stretch
    earliest: int  # stream position of the oldest child in the stretch


# The stretch is (after, until]; `before` bounds the latest update (exclusive), for paging.
# Driven by the events table's primary key when `after` is known (a sync's small stretch: CROSS
# JOIN keeps SQLite from starting at the rooms' relations instead), by the relations index of
# the rooms otherwise. The root must be a timeline event of the room.
_GROUPED = (
    " GROUP BY r.relates_to HAVING MAX(r.stream_ordering) < ?"
    " ORDER BY latest DESC LIMIT ?"
)
_COLUMNS = (
    "SELECT r.room_id, r.relates_to, MAX(r.stream_ordering) AS latest, COUNT(*),"
    " MIN(r.stream_ordering)"
)
_ROOT_OK = (
    " AND EXISTS (SELECT 1 FROM events root WHERE root.event_id = r.relates_to"
    " AND root.room_id = r.room_id AND root.outlier = 0)"
)
_SINCE = (
    f"{_COLUMNS} FROM events e CROSS JOIN event_relations r ON r.event_id = e.event_id"
    " WHERE e.stream_ordering > ? AND e.stream_ordering <= ? AND r.rel_type = 'm.thread'"
    f" AND r.room_id IN (SELECT value FROM json_each(?)){_ROOT_OK}{_GROUPED}"
)
_ALL = (
    f"{_COLUMNS} FROM event_relations r"
    " WHERE r.room_id IN (SELECT value FROM json_each(?)) AND r.rel_type = 'm.thread'"
    f" AND r.stream_ordering <= ?{_ROOT_OK}{_GROUPED}"
)
_FAR = 1 << 62


async def select_thread_updates(
    conn: aiosqlite.Connection,
    room_ids: Sequence[str],
    *,
    after: int | None,
    until: int | None,
    before: int | None = None,
    limit: int,
) -> list[ThreadUpdate]:
    """The threads of `room_ids` with children in (after, until] (None: unbounded), whose
    newest child there is before `before`, newest first, at most `limit`."""
    if not room_ids or limit <= 0:
        return []
    rooms = json.dumps(list(room_ids))
    upper = until if until is not None else _FAR
    bound = before if before is not None else _FAR
    if after is not None:
        params: list[object] = [after, upper, rooms, bound, limit]
        sql = _SINCE
    else:
        params = [rooms, upper, bound, limit]
        sql = _ALL
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    if not rows:
        return []
    # The newest children's ids, by their positions (the events table's key).
    positions = [int(r[2]) for r in rows]
    marks = ",".join("?" * len(positions))
    async with conn.execute(
        f"SELECT stream_ordering, event_id FROM events WHERE stream_ordering IN ({marks})",
        positions,
    ) as cur:
        ids = {int(p): e for p, e in await cur.fetchall()}
    return [
        ThreadUpdate(r[0], r[1], int(r[2]), ids[int(r[2])], int(r[3]), int(r[4]))
        for r in rows
        if int(r[2]) in ids
    ]
