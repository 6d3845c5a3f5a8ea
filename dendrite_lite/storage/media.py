"""media and media_thumbnails (migrations/0020_media.sql): what each mxc:// URI points at.

A row names a content-addressed file by its SHA-256 (media/store.py keeps the files); several rows
may share one file, so a file is deleted only when `count_sha256_refs` says nothing else uses it.
Rows of other servers' media (cached copies) are keyed by their origin's server name.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = [
    "MediaRow",
    "ThumbnailRow",
    "insert_media",
    "insert_pending_media",
    "count_pending_media",
    "complete_pending_media",
    "select_media",
    "update_media_access",
    "insert_thumbnail",
    "select_thumbnails",
    "count_sha256_refs",
    "delete_media",
]

_MEDIA_COLUMNS = (
    "server_name, media_id, sha256, size, content_type, upload_name, user_id, created_ts, "
    "expires_ts, authenticated, quarantined, last_access_ts"
)


# Whether content (`?`: its sha256) is quarantined already: a new row of it is quarantined too
# (storage/media_admin.py, where quarantine follows the content).
_CONTENT_QUARANTINED = "EXISTS (SELECT 1 FROM media WHERE sha256 = ? AND quarantined = 1)"


@dataclass(frozen=True, slots=True)
class MediaRow:
    server_name: str
    media_id: str
    sha256: str | None  # None: created with /create, content not uploaded yet
    size: int | None
    content_type: str | None
    upload_name: str | None
    user_id: str | None
    created_ts: int
    expires_ts: int | None = None
    authenticated: bool = False
    quarantined: bool = False
    last_access_ts: int | None = None

    @property
    def pending(self) -> bool:
        return self.sha256 is None


@dataclass(frozen=True, slots=True)
class ThumbnailRow:
    width: int  # the size it was made for (a standard one, or the one asked)
    height: int
    method: str  # crop | scale
    animated: bool
    sha256: str
    size: int
    content_type: str


def _media(row: aiosqlite.Row | tuple) -> MediaRow:  # type: ignore[type-arg]
    return MediaRow(
        server_name=row[0], media_id=row[1], sha256=row[2], size=row[3], content_type=row[4],
        upload_name=row[5], user_id=row[6], created_ts=row[7], expires_ts=row[8],
        authenticated=bool(row[9]), quarantined=bool(row[10]), last_access_ts=row[11],
    )


async def insert_media(conn: aiosqlite.Connection, media: MediaRow) -> None:
    """A complete upload (local) or a cached copy of remote media (replacing an older copy)."""
    await conn.execute(
        f"INSERT OR REPLACE INTO media ({_MEDIA_COLUMNS})"
        f" VALUES (?,?,?,?,?,?,?,?,?,?,max(?, {_CONTENT_QUARANTINED}),?)",
        (
            media.server_name, media.media_id, media.sha256, media.size, media.content_type,
            media.upload_name, media.user_id, media.created_ts, media.expires_ts,
            int(media.authenticated), int(media.quarantined), media.sha256, media.last_access_ts,
        ),
    )


async def insert_pending_media(
    conn: aiosqlite.Connection,
    server_name: str,
    media_id: str,
    user_id: str,
    created_ts: int,
    expires_ts: int,
    authenticated: bool,
) -> None:
    # Expired ids that were never uploaded to go as new ones are made: they can never be used.
    await conn.execute("DELETE FROM media WHERE sha256 IS NULL AND expires_ts <= ?", (created_ts,))
    await conn.execute(
        "INSERT INTO media (server_name, media_id, user_id, created_ts, expires_ts, authenticated)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (server_name, media_id, user_id, created_ts, expires_ts, int(authenticated)),
    )


async def count_pending_media(conn: aiosqlite.Connection, user_id: str, now_ms: int) -> int:
    """The user's created, not yet uploaded and not yet expired media ids."""
    async with conn.execute(
        "SELECT count(*) FROM media WHERE user_id = ? AND sha256 IS NULL AND expires_ts > ?",
        (user_id, now_ms),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def complete_pending_media(
    conn: aiosqlite.Connection,
    server_name: str,
    media_id: str,
    sha256: str,
    size: int,
    content_type: str | None,
    upload_name: str | None,
) -> bool:
    """Fill in a pending upload; False when it was no longer pending (a concurrent PUT won)."""
    cur = await conn.execute(
        "UPDATE media SET sha256 = ?, size = ?, content_type = ?, upload_name = ?, expires_ts = NULL,"
        f" quarantined = {_CONTENT_QUARANTINED}"
        " WHERE server_name = ? AND media_id = ? AND sha256 IS NULL",
        (sha256, size, content_type, upload_name, sha256, server_name, media_id),
    )
    return cur.rowcount == 1


async def select_media(
    conn: aiosqlite.Connection, server_name: str, media_id: str
) -> MediaRow | None:
    async with conn.execute(
        f"SELECT {_MEDIA_COLUMNS} FROM media WHERE server_name = ? AND media_id = ?",
        (server_name, media_id),
    ) as cur:
        row = await cur.fetchone()
    return _media(row) if row is not None else None


async def update_media_access(
    conn: aiosqlite.Connection, server_name: str, media_id: str, now_ms: int
) -> None:
    await conn.execute(
        "UPDATE media SET last_access_ts = ? WHERE server_name = ? AND media_id = ?",
        (now_ms, server_name, media_id),
    )


async def insert_thumbnail(
    conn: aiosqlite.Connection, server_name: str, media_id: str, thumb: ThumbnailRow
) -> None:
    await conn.execute(
        "INSERT OR REPLACE INTO media_thumbnails (server_name, media_id, width, height, method,"
        " animated, sha256, size, content_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            server_name, media_id, thumb.width, thumb.height, thumb.method, int(thumb.animated),
            thumb.sha256, thumb.size, thumb.content_type,
        ),
    )


async def select_thumbnails(
    conn: aiosqlite.Connection, server_name: str, media_id: str
) -> list[ThumbnailRow]:
    async with conn.execute(
        "SELECT width, height, method, animated, sha256, size, content_type FROM media_thumbnails"
        " WHERE server_name = ? AND media_id = ?",
        (server_name, media_id),
    ) as cur:
        rows = await cur.fetchall()
    return [
        ThumbnailRow(
            width=r[0], height=r[1], method=r[2], animated=bool(r[3]), sha256=r[4], size=r[5],
            content_type=r[6],
        )
        for r in rows
    ]


async def count_sha256_refs(conn: aiosqlite.Connection, sha256: str) -> int:
    """How many media rows and thumbnails use the file of this hash."""
    async with conn.execute(
        "SELECT (SELECT count(*) FROM media WHERE sha256 = ?)"
        " + (SELECT count(*) FROM media_thumbnails WHERE sha256 = ?)",
        (sha256, sha256),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def delete_media(conn: aiosqlite.Connection, server_name: str, media_id: str) -> list[str]:
    """Delete a media row and its thumbnails; the hashes of files nothing uses any more (for the
    caller to delete after the commit)."""
    hashes: set[str] = set()
    async with conn.execute(
        "SELECT sha256 FROM media WHERE server_name = ? AND media_id = ? AND sha256 IS NOT NULL"
        " UNION SELECT sha256 FROM media_thumbnails WHERE server_name = ? AND media_id = ?",
        (server_name, media_id, server_name, media_id),
    ) as cur:
        hashes.update(str(r[0]) for r in await cur.fetchall())
    await conn.execute(
        "DELETE FROM media_thumbnails WHERE server_name = ? AND media_id = ?",
        (server_name, media_id),
    )
    await conn.execute(
        "DELETE FROM media WHERE server_name = ? AND media_id = ?", (server_name, media_id)
    )
    return sorted([h for h in hashes if await count_sha256_refs(conn, h) == 0])
