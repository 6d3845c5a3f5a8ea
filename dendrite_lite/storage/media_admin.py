"""Queries over the media table (migrations/0020_media.sql) for operations: a user's quota use
(index media_by_user, 0022), quarantine, which cached remote copies are old, and totals."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = [
    "MediaTotals",
    "select_media_totals",
    "select_old_remote_media",
    "select_user_media_bytes",
    "update_quarantined",
]


@dataclass(frozen=True, slots=True)
class MediaTotals:
    local_count: int
    local_bytes: int
    remote_count: int
    remote_bytes: int


async def select_user_media_bytes(conn: aiosqlite.Connection, user_id: str) -> int:
    """The bytes of every media row `user_id` uploaded (each upload counts, deduplicated on disk
    or not: what a user is charged for does not depend on what others uploaded)."""
    async with conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM media WHERE user_id = ?", (user_id,)
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def update_quarantined(
    conn: aiosqlite.Connection, server_name: str, media_id: str, quarantined: bool
) -> bool:
    """False when there is no such media."""
    cur = await conn.execute(
        "UPDATE media SET quarantined = ? WHERE server_name = ? AND media_id = ?",
        (int(quarantined), server_name, media_id),
    )
    return cur.rowcount > 0


async def select_old_remote_media(
    conn: aiosqlite.Connection, our_server: str, before_ts: int
) -> list[tuple[str, str]]:
    """Copies of content from elsewhere, last read (or, never read, fetched) before `before_ts`:
    other servers' media, and URL preview images (ours, with no uploader)."""
    async with conn.execute(
        "SELECT server_name, media_id FROM media"
        " WHERE (server_name != ? OR user_id IS NULL)"
        " AND COALESCE(last_access_ts, created_ts) < ?",
        (our_server, before_ts),
    ) as cur:
        return [(str(r[0]), str(r[1])) for r in await cur.fetchall()]


async def select_media_totals(conn: aiosqlite.Connection, our_server: str) -> MediaTotals:
    async with conn.execute(
        "SELECT server_name = ?, COUNT(*), COALESCE(SUM(size), 0) FROM media GROUP BY 1",
        (our_server,),
    ) as cur:
        rows = {bool(r[0]): (int(r[1]), int(r[2])) for r in await cur.fetchall()}
    local, remote = rows.get(True, (0, 0)), rows.get(False, (0, 0))
    return MediaTotals(local[0], local[1], remote[0], remote[1])
