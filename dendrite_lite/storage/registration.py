"""The registration_tokens table (schema in migrations/0003_registration.sql)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "RegistrationToken",
    "insert_registration_token",
    "select_registration_token",
    "select_registration_tokens",
    "use_registration_token",
    "delete_registration_token",
]

_COLUMNS = "token, uses_allowed, completed, expiry_ts, created_ts"
INSERT_TOKEN = (
    "INSERT INTO registration_tokens (token, uses_allowed, expiry_ts, created_ts)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (token) DO NOTHING"
)
SELECT_TOKEN = f"SELECT {_COLUMNS} FROM registration_tokens WHERE token = ?"
SELECT_TOKENS = f"SELECT {_COLUMNS} FROM registration_tokens ORDER BY created_ts, token"
# Checking validity and counting the use in one statement means two registrations racing for the
# last use of a token cannot both get it.
USE_TOKEN = (
    "UPDATE registration_tokens SET completed = completed + 1 WHERE token = ?1"
    " AND (uses_allowed IS NULL OR completed < uses_allowed)"
    " AND (expiry_ts IS NULL OR expiry_ts > ?2)"
)
DELETE_TOKEN = "DELETE FROM registration_tokens WHERE token = ?"


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None
    completed: int
    expiry_ts: int | None
    created_ts: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RegistrationToken:
        return cls(**{key: row[key] for key in row.keys()})

    def is_valid(self, now_ms: int) -> bool:
        """Usable for one more registration at now_ms."""
        if self.expiry_ts is not None and now_ms >= self.expiry_ts:
            return False
        return self.uses_allowed is None or self.completed < self.uses_allowed


async def insert_registration_token(
    conn: aiosqlite.Connection,
    *,
    token: str,
    created_ts: int,
    uses_allowed: int | None = None,
    expiry_ts: int | None = None,
) -> bool:
    """Insert a token; False (and no change) if it already exists."""
    cur = await conn.execute(INSERT_TOKEN, (token, uses_allowed, expiry_ts, created_ts))
    return cur.rowcount == 1


async def select_registration_token(
    conn: aiosqlite.Connection, token: str
) -> RegistrationToken | None:
    async with conn.execute(SELECT_TOKEN, (token,)) as cur:
        row = await cur.fetchone()
    return RegistrationToken.from_row(row) if row is not None else None


async def select_registration_tokens(conn: aiosqlite.Connection) -> list[RegistrationToken]:
    async with conn.execute(SELECT_TOKENS) as cur:
        return [RegistrationToken.from_row(row) for row in await cur.fetchall()]


async def use_registration_token(conn: aiosqlite.Connection, token: str, now_ms: int) -> bool:
    """Count one registration against the token; False (no change) if it is not valid now."""
    cur = await conn.execute(USE_TOKEN, (token, now_ms))
    return cur.rowcount == 1


async def delete_registration_token(conn: aiosqlite.Connection, token: str) -> bool:
    cur = await conn.execute(DELETE_TOKEN, (token,))
    return cur.rowcount == 1
