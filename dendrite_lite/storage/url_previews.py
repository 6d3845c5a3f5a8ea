"""url_previews (migrations/0019_url_previews.sql): the URL preview cache, one row per URL
holding the OpenGraph answer as JSON until it expires."""

from __future__ import annotations

import aiosqlite

__all__ = ["delete_expired_url_previews", "select_url_preview", "upsert_url_preview"]


async def select_url_preview(conn: aiosqlite.Connection, url: str, now_ms: int) -> str | None:
    """The cached JSON answer for `url`, unless it has expired."""
    async with conn.execute(
        "SELECT og FROM url_previews WHERE url = ? AND expires_ts > ?", (url, now_ms)
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None


async def upsert_url_preview(
    conn: aiosqlite.Connection, url: str, og_json: str, now_ms: int, expires_ts: int
) -> None:
    # Expired rows go as new ones come: the table holds only the URLs in recent use.
    await delete_expired_url_previews(conn, now_ms)
    await conn.execute(
        "INSERT INTO url_previews (url, og, fetched_ts, expires_ts) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (url) DO UPDATE SET og = excluded.og, fetched_ts = excluded.fetched_ts,"
        " expires_ts = excluded.expires_ts",
        (url, og_json, now_ms, expires_ts),
    )


async def delete_expired_url_previews(conn: aiosqlite.Connection, now_ms: int) -> int:
    cur = await conn.execute("DELETE FROM url_previews WHERE expires_ts <= ?", (now_ms,))
    return cur.rowcount
