"""The thread_subscriptions table: each user's thread subscriptions (MSC4306), schema in
migrations/0034_thread_subscriptions.sql.

A row holds a (user, thread)'s latest state and the stream position of its latest change; a
write that changes nothing (subscribing again, unsubscribing from a thread never subscribed)
writes nothing and takes no position, so clients are not sent a change that is none. Rows are
never deleted: the newest row holds the stream's current position, and a position handed out to
a client must never be handed out again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import aiosqlite

__all__ = [
    "Conflict",
    "SubscriptionChange",
    "select_changes",
    "select_max_stream_id",
    "select_subscription",
    "subscribe",
    "unsubscribe",
]

SELECT_MAX = "SELECT COALESCE(MAX(stream_id), 0) FROM thread_subscriptions"
SELECT_ROW = (
    "SELECT subscribed, automatic, unsubscribed_at_stream, unsubscribed_at_depth"
    " FROM thread_subscriptions WHERE user_id = ? AND room_id = ? AND root_id = ?"
)
UPSERT = (
    "INSERT INTO thread_subscriptions (user_id, room_id, root_id, subscribed, automatic,"
    " stream_id, unsubscribed_at_stream, unsubscribed_at_depth)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, room_id, root_id) DO UPDATE SET subscribed = excluded.subscribed,"
    " automatic = excluded.automatic, stream_id = excluded.stream_id,"
    " unsubscribed_at_stream = excluded.unsubscribed_at_stream,"
    " unsubscribed_at_depth = excluded.unsubscribed_at_depth"
)
# The newest position and depth of the room at an unsubscription (outliers included: the
# bound only has to be at least that of every event the client could have seen).
SELECT_ROOM_TOP = "SELECT MAX(stream_ordering), MAX(depth) FROM events WHERE room_id = ?"
# The newest `limit` changes in (after, upto], returned oldest first.
SELECT_CHANGES = (
    "SELECT stream_id, room_id, root_id, subscribed, automatic FROM ("
    " SELECT stream_id, room_id, root_id, subscribed, automatic FROM thread_subscriptions"
    " WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id DESC LIMIT ?)"
    " ORDER BY stream_id"
)


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    stream_id: int  # also the bump_stamp clients see
    room_id: str
    root_id: str
    subscribed: bool
    automatic: bool  # meaningful only when subscribed


class Conflict(Enum):
    """An automatic subscription refused: the user unsubscribed after its cause event."""

    UNSUBSCRIBED_LATER = "unsubscribed_later"


async def select_max_stream_id(conn: aiosqlite.Connection) -> int:
    async with conn.execute(SELECT_MAX) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_subscription(
    conn: aiosqlite.Connection, user_id: str, room_id: str, root_id: str
) -> bool | None:
    """`automatic` of the user's subscription to the thread; None when not subscribed."""
    async with conn.execute(SELECT_ROW, (user_id, room_id, root_id)) as cur:
        row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    return bool(row[1])


async def subscribe(
    conn: aiosqlite.Connection,
    user_id: str,
    room_id: str,
    root_id: str,
    cause: tuple[int, int] | None,
) -> int | Conflict | None:
    """Subscribe the user to the thread: manually (`cause` None) or automatically because of the
    event at `cause` (its stream position and depth). Returns the change's stream position, None
    when nothing changes (already subscribed manually, or automatically and this one is
    automatic too: a manual subscription is never downgraded), or Conflict when an automatic
    subscription comes after an unsubscription that already saw its cause event.

    "Saw": the cause's stream position is not above the room's newest position at the
    unsubscription; a backfilled cause (negative position, MSC4306 leaves the ordering to the
    server) is compared by depth instead."""
    automatic = cause is not None
    async with conn.execute(SELECT_ROW, (user_id, room_id, root_id)) as cur:
        row = await cur.fetchone()
    if row is not None:
        subscribed, was_automatic, unsub_stream, unsub_depth = row
        if subscribed and (not was_automatic or automatic):
            return None
        if not subscribed and cause is not None and unsub_stream is not None:
            stream, depth = cause
            if 0 < stream <= unsub_stream or (stream < 0 and depth <= (unsub_depth or 0)):
                return Conflict.UNSUBSCRIBED_LATER
    stream_id = await select_max_stream_id(conn) + 1
    await conn.execute(
        UPSERT, (user_id, room_id, root_id, 1, int(automatic), stream_id, None, None)
    )
    return stream_id


async def unsubscribe(
    conn: aiosqlite.Connection, user_id: str, room_id: str, root_id: str
) -> int | None:
    """Unsubscribe the user from the thread; the change's stream position, or None when the
    user was not subscribed (nothing to change)."""
    async with conn.execute(SELECT_ROW, (user_id, room_id, root_id)) as cur:
        row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    async with conn.execute(SELECT_ROOM_TOP, (room_id,)) as cur:
        top = await cur.fetchone()
    top_stream = int(top[0]) if top is not None and top[0] is not None else 0
    top_depth = int(top[1]) if top is not None and top[1] is not None else 0
    stream_id = await select_max_stream_id(conn) + 1
    await conn.execute(
        UPSERT, (user_id, room_id, root_id, 0, int(row[1]), stream_id, top_stream, top_depth)
    )
    return stream_id


async def select_changes(
    conn: aiosqlite.Connection, user_id: str, after: int, upto: int, limit: int
) -> list[SubscriptionChange]:
    """The user's newest `limit` changes with positions in (after, upto], oldest first: when
    there are more, the oldest are the ones left out (MSC4308: "only the latest changes")."""
    async with conn.execute(SELECT_CHANGES, (user_id, after, upto, limit)) as cur:
        rows = await cur.fetchall()
    return [
        SubscriptionChange(int(r[0]), r[1], r[2], bool(r[3]), bool(r[4]) and bool(r[3]))
        for r in rows
    ]

