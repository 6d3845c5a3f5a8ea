"""Queries over the media table (migrations/0020_media.sql) for operations: a user's quota use
(index media_by_user, 0022), quarantine and protection from it (0025), which cached remote
copies are old, totals, and the admin API's listings (a user's uploads, a room's mxc:// URIs)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = [
    "MEDIA_ORDER_COLUMNS",
    "USAGE_ORDER_COLUMNS",
    "AdminMedia",
    "MediaTotals",
    "UsageQuery",
    "UserMediaUsage",
    "select_admin_media",
    "select_local_media_ids_before",
    "select_media_totals",
    "select_old_remote_media",
    "select_room_event_json_with_mxc",
    "select_user_media",
    "select_user_media_bytes",
    "select_users_media_usage",
    "update_media_list_quarantined",
    "update_protected",
    "update_quarantined",
    "update_user_media_quarantined",
]

# The admin API's `order_by` values (Synapse's names) and the columns they sort by.
MEDIA_ORDER_COLUMNS = {
    "media_id": "media_id",
    "upload_name": "upload_name",
    "created_ts": "created_ts",
    "last_access_ts": "last_access_ts",
    "media_length": "size",
    "media_type": "content_type",
    "quarantined_by": "quarantined_by",
    "safe_from_quarantine": "protected",
}
_ADMIN_COLUMNS = (
    "server_name, media_id, sha256, size, content_type, upload_name, user_id, created_ts,"
    " last_access_ts, authenticated, quarantined, quarantined_by, protected"
)


@dataclass(frozen=True, slots=True)
class MediaTotals:
    local_count: int
    local_bytes: int
    remote_count: int
    remote_bytes: int


@dataclass(frozen=True, slots=True)
class AdminMedia:
    """A media row as the admin API shows it."""

    server_name: str
    media_id: str
    sha256: str | None
    size: int | None
    content_type: str | None
    upload_name: str | None
    user_id: str | None
    created_ts: int
    last_access_ts: int | None
    authenticated: bool
    quarantined: bool
    quarantined_by: str | None
    protected: bool


def _admin_media(row: tuple) -> AdminMedia:  # type: ignore[type-arg]
    return AdminMedia(
        *row[:9], authenticated=bool(row[9]), quarantined=bool(row[10]),
        quarantined_by=row[11], protected=bool(row[12]),
    )


async def select_admin_media(
    conn: aiosqlite.Connection, server_name: str, media_id: str
) -> AdminMedia | None:
    async with conn.execute(
        f"SELECT {_ADMIN_COLUMNS} FROM media WHERE server_name = ? AND media_id = ?",
        (server_name, media_id),
    ) as cur:
        row = await cur.fetchone()
    return _admin_media(tuple(row)) if row is not None else None


async def select_user_media(
    conn: aiosqlite.Connection, user_id: str, *, order_by: str, backwards: bool,
    offset: int, limit: int,
) -> tuple[list[AdminMedia], int]:
    """A page of what `user_id` uploaded (pending /create ids too), sorted by the
    MEDIA_ORDER_COLUMNS key `order_by` then media_id ascending (a stable order), and the count."""
    column = MEDIA_ORDER_COLUMNS[order_by]
    direction = "DESC" if backwards else "ASC"
    async with conn.execute(
        f"SELECT {_ADMIN_COLUMNS} FROM media WHERE user_id = ?"
        f" ORDER BY {column} {direction}, media_id ASC LIMIT ? OFFSET ?",
        (user_id, limit, offset),
    ) as cur:
        page = [_admin_media(tuple(r)) for r in await cur.fetchall()]
    async with conn.execute("SELECT COUNT(*) FROM media WHERE user_id = ?", (user_id,)) as cur:
        row = await cur.fetchone()
    return page, int(row[0]) if row is not None else 0


async def select_user_media_bytes(conn: aiosqlite.Connection, user_id: str) -> int:
    """The bytes of every media row `user_id` uploaded (each upload counts, deduplicated on disk
    or not: what a user is charged for does not depend on what others uploaded)."""
    async with conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM media WHERE user_id = ?", (user_id,)
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


# Quarantine follows the content (as Synapse since 1.128): every other unprotected row of the
# same file goes with a quarantined one, and media/repository.py's writes (storage/media.py)
# quarantine a new row whose content is quarantined already, so uploading it again under a new
# id does not serve it again. `?` is the SQL naming the quarantined rows' sha256 values.
_SPREAD = (
    "UPDATE media SET quarantined = 1, quarantined_by = ?"
    " WHERE quarantined = 0 AND protected = 0 AND sha256 IN ({})"
)


async def update_quarantined(
    conn: aiosqlite.Connection, server_name: str, media_id: str, quarantined: bool,
    by: str | None = None,
) -> bool:
    """(Un)quarantine one row and every other of the same content; False when there is no
    such media, or when it is protected and `quarantined` is True (protected media is never
    quarantined)."""
    same_content = "SELECT sha256 FROM media WHERE server_name = ? AND media_id = ?"
    if not quarantined:
        cur = await conn.execute(
            "UPDATE media SET quarantined = 0, quarantined_by = NULL"
            f" WHERE (server_name = ? AND media_id = ?) OR sha256 IN ({same_content})",
            (server_name, media_id, server_name, media_id),
        )
        return cur.rowcount > 0
    cur = await conn.execute(
        "UPDATE media SET quarantined = 1, quarantined_by = ?"
        " WHERE server_name = ? AND media_id = ? AND protected = 0",
        (by, server_name, media_id),
    )
    if cur.rowcount:
        await conn.execute(_SPREAD.format(same_content), (by, server_name, media_id))
    return cur.rowcount > 0


async def update_media_list_quarantined(
    conn: aiosqlite.Connection, uris: list[tuple[str, str]], by: str | None
) -> int:
    """Quarantine every unprotected row of `uris` ((server_name, media_id) pairs), and their
    content's other rows; how many of `uris` (rows quarantined before count again, as Synapse)."""
    count = 0
    for server_name, media_id in uris:
        if await update_quarantined(conn, server_name, media_id, True, by):
            count += 1
    return count


async def update_user_media_quarantined(
    conn: aiosqlite.Connection, user_id: str, by: str | None
) -> int:
    """Quarantine every unprotected upload of `user_id`, and their content's other rows; how
    many of the user's."""
    cur = await conn.execute(
        "UPDATE media SET quarantined = 1, quarantined_by = ? WHERE user_id = ? AND protected = 0",
        (by, user_id),
    )
    count = cur.rowcount
    sql = _SPREAD.format("SELECT sha256 FROM media WHERE user_id = ? AND quarantined = 1")
    await conn.execute(sql, (by, user_id))
    return count


async def update_protected(
    conn: aiosqlite.Connection, server_name: str, media_id: str, protected: bool
) -> bool:
    """False when there is no such media."""
    cur = await conn.execute(
        "UPDATE media SET protected = ? WHERE server_name = ? AND media_id = ?",
        (int(protected), server_name, media_id),
    )
    return cur.rowcount > 0


async def select_room_event_json_with_mxc(conn: aiosqlite.Connection, room_id: str) -> list[str]:
    """The JSON of the room's events that name an mxc:// URI anywhere (the caller picks the
    URIs out of their content). A scan of the room's events: an admin operation, not a hot path."""
    async with conn.execute(
        "SELECT json FROM events WHERE room_id = ? AND instr(json, 'mxc://') > 0"
        " ORDER BY stream_ordering",
        (room_id,),
    ) as cur:
        return [str(r[0]) for r in await cur.fetchall()]


# Images a profile or a room shows (an account's avatar, a room's current m.room.avatar):
# POST /media/delete keeps them unless keep_profiles=false.
# (NULLs are left out: one NULL in a NOT IN list makes the test fail for every row.)
_PROFILE_IMAGES = (
    "SELECT avatar_url FROM accounts WHERE avatar_url IS NOT NULL"
    " UNION SELECT json_extract(e.json, '$.content.url') FROM current_state AS s"
    " JOIN events AS e ON e.event_id = s.event_id WHERE s.type = 'm.room.avatar'"
    " AND json_extract(e.json, '$.content.url') IS NOT NULL"
)


async def select_local_media_ids_before(
    conn: aiosqlite.Connection, our_server: str, *, before_ts: int, size_gt: int,
    keep_profiles: bool,
) -> list[str]:
    """Our uploads last read (never read: uploaded) before `before_ts` and larger than `size_gt`
    bytes, except protected ones and URL preview images (no uploader); with `keep_profiles`,
    except avatars too."""
    sql = (
        "SELECT media_id FROM media WHERE server_name = ? AND user_id IS NOT NULL"
        " AND sha256 IS NOT NULL AND protected = 0 AND size > ?"
        " AND COALESCE(last_access_ts, created_ts) < ?"
    )
    if keep_profiles:
        sql += f" AND 'mxc://' || server_name || '/' || media_id NOT IN ({_PROFILE_IMAGES})"
    async with conn.execute(sql + " ORDER BY media_id", (our_server, size_gt, before_ts)) as cur:
        return [str(r[0]) for r in await cur.fetchall()]


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


# GET /_synapse/admin/v1/statistics/users/media's `order_by` values and their columns.
USAGE_ORDER_COLUMNS = {
    "user_id": "u.user_id",
    "displayname": "a.displayname",
    "media_length": "u.media_length",
    "media_count": "u.media_count",
}


@dataclass(frozen=True, slots=True)
class UserMediaUsage:
    user_id: str
    displayname: str | None
    media_count: int
    media_length: int


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Which uploads count (created from_ts..until_ts, ms) and which users show (`search` in
    the localpart or display name, any case), in USAGE_ORDER_COLUMNS[order_by] order."""

    order_by: str = "user_id"
    backwards: bool = False
    from_ts: int = 0
    until_ts: int | None = None
    search: str | None = None


async def select_users_media_usage(
    conn: aiosqlite.Connection, our_server: str, query: UsageQuery, *, offset: int, limit: int
) -> tuple[list[UserMediaUsage], int]:
    """A page of our users with uploads, each with how many and their bytes, and the count."""
    args = {
        "server": our_server, "from_ts": query.from_ts, "until_ts": query.until_ts,
        "search": query.search.lower() if query.search else None,
    }
    sql = (
        "WITH u AS (SELECT user_id, COUNT(*) AS media_count, COALESCE(SUM(size), 0) AS media_length"
        "  FROM media WHERE server_name = :server AND user_id IS NOT NULL"
        "  AND created_ts >= :from_ts AND (:until_ts IS NULL OR created_ts <= :until_ts)"
        "  GROUP BY user_id)"
        " SELECT {what} FROM u LEFT JOIN accounts AS a ON a.user_id = u.user_id"
        " WHERE :search IS NULL"
        "  OR instr(lower(substr(u.user_id, 2, instr(u.user_id, ':') - 2)), :search) > 0"
        "  OR instr(lower(a.displayname), :search) > 0"
    )
    direction = "DESC" if query.backwards else "ASC"
    order = f" ORDER BY {USAGE_ORDER_COLUMNS[query.order_by]} {direction}, u.user_id ASC"
    page_sql = sql.format(what="u.user_id, a.displayname, u.media_count, u.media_length")
    async with conn.execute(
        f"{page_sql}{order} LIMIT :limit OFFSET :offset", {**args, "limit": limit, "offset": offset}
    ) as cur:
        page = [UserMediaUsage(*row) for row in await cur.fetchall()]
    async with conn.execute(sql.format(what="COUNT(*)"), args) as cur:
        row = await cur.fetchone()
    return page, int(row[0]) if row is not None else 0
