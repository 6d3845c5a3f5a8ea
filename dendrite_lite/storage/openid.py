"""openid_tokens (migrations/0016_push_reports.sql): the tokens of
POST /user/{userId}/openid/request_token, kept by their SHA-256 (the `token` column), so the
database never holds one that could be replayed."""

from __future__ import annotations

import aiosqlite

__all__ = ["insert_openid_token", "select_openid_user"]


async def insert_openid_token(
    conn: aiosqlite.Connection, token_hash: str, user_id: str, expires_ts: int, now_ms: int
) -> None:
    # Expired tokens go as new ones come: the table stays as small as the tokens in use.
    await conn.execute("DELETE FROM openid_tokens WHERE expires_ts <= ?", (now_ms,))
    await conn.execute(
        "INSERT INTO openid_tokens (token, user_id, expires_ts) VALUES (?, ?, ?)",
        (token_hash, user_id, expires_ts),
    )


async def select_openid_user(
    conn: aiosqlite.Connection, token_hash: str, now_ms: int
) -> str | None:
    """The user of an unexpired token."""
    async with conn.execute(
        "SELECT user_id FROM openid_tokens WHERE token = ? AND expires_ts > ?", (token_hash, now_ms)
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None
