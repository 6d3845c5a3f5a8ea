"""sso_subjects (migrations/0039_sso_subjects.sql): the account each (identity provider,
subject) of single sign-on signs in as."""

from __future__ import annotations

import aiosqlite

__all__ = ["insert_sso_subject", "select_sso_user"]


async def select_sso_user(conn: aiosqlite.Connection, idp_id: str, subject: str) -> str | None:
    async with conn.execute(
        "SELECT user_id FROM sso_subjects WHERE idp_id = ? AND subject = ?", (idp_id, subject)
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None


async def insert_sso_subject(
    conn: aiosqlite.Connection, idp_id: str, subject: str, user_id: str, now_ms: int
) -> str:
    """Link the subject to `user_id` unless it is linked already; the account it is linked to."""
    await conn.execute(
        "INSERT OR IGNORE INTO sso_subjects (idp_id, subject, user_id, created_ts)"
        " VALUES (?, ?, ?, ?)",
        (idp_id, subject, user_id, now_ms),
    )
    return await select_sso_user(conn, idp_id, subject) or user_id
