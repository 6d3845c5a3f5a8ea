"""Whole-server counts for the admin dashboard (GET /_dendrite_lite/admin/v1/status): each one
query over an index or a small table, cheap enough to run every few seconds."""

from __future__ import annotations

import aiosqlite

__all__ = ["select_media_bytes", "select_room_count", "select_user_counts"]

# Our users (accounts holds only local ones), guests and deactivated accounts left out; active:
# with a device seen (or created) since the cut-off.
_SELECT_USER_COUNTS = """
SELECT count(*),
       coalesce(sum(EXISTS (SELECT 1 FROM devices d WHERE d.user_id = a.user_id
                            AND coalesce(d.last_seen_ts, d.created_ts) >= ?)), 0)
FROM accounts a WHERE a.is_guest = 0 AND a.deactivated = 0
"""
_SELECT_ROOM_COUNT = "SELECT count(*) FROM rooms"
# Files are stored once per content (media/store.py), however many ids share it.
_SELECT_MEDIA_BYTES = """
SELECT coalesce(sum(size), 0) FROM
  (SELECT max(size) AS size FROM media WHERE sha256 IS NOT NULL GROUP BY sha256)
"""


async def select_user_counts(conn: aiosqlite.Connection, active_since_ms: int) -> tuple[int, int]:
    """(local users, those active since `active_since_ms`)."""
    async with conn.execute(_SELECT_USER_COUNTS, (active_since_ms,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def select_room_count(conn: aiosqlite.Connection) -> int:
    async with conn.execute(_SELECT_ROOM_COUNT) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def select_media_bytes(conn: aiosqlite.Connection) -> int:
    async with conn.execute(_SELECT_MEDIA_BYTES) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
