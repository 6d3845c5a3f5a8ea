"""The devices and access_tokens tables (schema in migrations/0001_init.sql).

Tokens are looked up by their SHA-256 (`hash_token`); the token itself is never stored. Every
token belongs to a device, and deleting a device deletes its tokens through the foreign key.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "AccessToken",
    "Device",
    "delete_device",
    "delete_devices_for_user",
    "delete_replaced_token",
    "delete_token",
    "delete_tokens_for_device",
    "delete_tokens_for_user",
    "hash_token",
    "insert_access_token",
    "insert_device",
    "select_device",
    "select_devices",
    "select_token",
    "select_token_by_refresh_hash",
    "update_device_display_name",
    "update_device_last_seen",
    "update_token_last_used",
    "update_tokens_soft_logged_out",
]

_DEVICE_COLUMNS = (
    "user_id, device_id, display_name, last_seen_ts, last_seen_ip, created_ts, last_seen_user_agent"
)
INSERT_DEVICE = (
    "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip, created_ts)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO NOTHING"
)
SELECT_DEVICE = f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?"
SELECT_DEVICES = f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? ORDER BY device_id"
UPDATE_DEVICE_DISPLAY_NAME = (
    "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?"
)
UPDATE_DEVICE_LAST_SEEN = (
    "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?,"
    " last_seen_user_agent = coalesce(?, last_seen_user_agent) WHERE user_id = ? AND device_id = ?"
)
DELETE_DEVICE = "DELETE FROM devices WHERE user_id = ? AND device_id = ?"
# `x IS NOT ?` with NULL bound keeps every row: one statement serves "all" and "all but one".
DELETE_DEVICES_FOR_USER = "DELETE FROM devices WHERE user_id = ? AND device_id IS NOT ?"

_TOKEN_COLUMNS = (
    "token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_hash,"
    " refresh_expires_ts, previous_token_hash, soft_logged_out, last_used_ts"
)
INSERT_ACCESS_TOKEN = (
    "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts, expires_ts,"
    " refresh_token_hash, refresh_expires_ts, previous_token_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM access_tokens WHERE token_hash = ?"
SELECT_TOKEN_BY_REFRESH = f"SELECT {_TOKEN_COLUMNS} FROM access_tokens WHERE refresh_token_hash = ?"
UPDATE_TOKEN_LAST_USED = "UPDATE access_tokens SET last_used_ts = ? WHERE token_hash = ?"
UPDATE_TOKENS_SOFT_LOGGED_OUT = (
    "UPDATE access_tokens SET soft_logged_out = 1"
    " WHERE user_id = ?1 AND (?2 IS NULL OR device_id = ?2)"
)
DELETE_TOKEN = "DELETE FROM access_tokens WHERE token_hash = ?"
DELETE_REPLACED_TOKEN = (
    "DELETE FROM access_tokens WHERE token_hash ="
    " (SELECT previous_token_hash FROM access_tokens WHERE token_hash = ?)"
)
CLEAR_PREVIOUS_TOKEN = (
    "UPDATE access_tokens SET previous_token_hash = NULL"
    " WHERE token_hash = ? AND previous_token_hash IS NOT NULL"
)
DELETE_TOKENS_FOR_DEVICE = "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?"
DELETE_TOKENS_FOR_USER = "DELETE FROM access_tokens WHERE user_id = ? AND token_hash IS NOT ?"


def hash_token(token: str) -> str:
    """The hex SHA-256 under which an access or refresh token is stored and looked up.

    A plain hash (no salt, no slow KDF) is right here: tokens are long random strings, so there
    is nothing to brute-force, and every request must look its token up quickly.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Device:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    created_ts: int
    last_seen_user_agent: str | None = None  # migration 0026

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Device:
        return cls(**{key: row[key] for key in row.keys()})


@dataclass(frozen=True, slots=True)
class AccessToken:
    token_hash: str
    user_id: str
    device_id: str
    created_ts: int
    expires_ts: int | None
    refresh_token_hash: str | None
    refresh_expires_ts: int | None
    previous_token_hash: str | None
    soft_logged_out: bool
    last_used_ts: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AccessToken:
        fields = {key: row[key] for key in row.keys()}
        fields["soft_logged_out"] = bool(fields["soft_logged_out"])
        return cls(**fields)

    def is_expired(self, now_ms: int) -> bool:
        return self.expires_ts is not None and now_ms >= self.expires_ts


# -- devices ------------------------------------------------------------------------------


async def insert_device(
    conn: aiosqlite.Connection,
    *,
    user_id: str,
    device_id: str,
    created_ts: int,
    display_name: str | None = None,
    ip: str | None = None,
) -> bool:
    """Insert a device (last seen now, from ip); False (and no change) if it already exists."""
    cur = await conn.execute(
        INSERT_DEVICE, (user_id, device_id, display_name, created_ts, ip, created_ts)
    )
    return cur.rowcount == 1


async def select_device(
    conn: aiosqlite.Connection, user_id: str, device_id: str
) -> Device | None:
    async with conn.execute(SELECT_DEVICE, (user_id, device_id)) as cur:
        row = await cur.fetchone()
    return Device.from_row(row) if row is not None else None


async def select_devices(conn: aiosqlite.Connection, user_id: str) -> list[Device]:
    async with conn.execute(SELECT_DEVICES, (user_id,)) as cur:
        return [Device.from_row(row) for row in await cur.fetchall()]


async def update_device_display_name(
    conn: aiosqlite.Connection, user_id: str, device_id: str, display_name: str | None
) -> bool:
    cur = await conn.execute(UPDATE_DEVICE_DISPLAY_NAME, (display_name, user_id, device_id))
    return cur.rowcount == 1


async def update_device_last_seen(
    conn: aiosqlite.Connection,
    user_id: str,
    device_id: str,
    *,
    ts: int,
    ip: str | None,
    user_agent: str | None = None,
) -> bool:
    """Record a use of the device; a request without a User-Agent keeps the last one known."""
    cur = await conn.execute(UPDATE_DEVICE_LAST_SEEN, (ts, ip, user_agent, user_id, device_id))
    return cur.rowcount == 1


async def delete_device(conn: aiosqlite.Connection, user_id: str, device_id: str) -> bool:
    """Delete a device and (by cascade) all its access and refresh tokens."""
    cur = await conn.execute(DELETE_DEVICE, (user_id, device_id))
    return cur.rowcount == 1


async def delete_devices_for_user(
    conn: aiosqlite.Connection, user_id: str, *, except_device_id: str | None = None
) -> int:
    """Delete every device of a user (and their tokens), optionally keeping one; returns count."""
    cur = await conn.execute(DELETE_DEVICES_FOR_USER, (user_id, except_device_id))
    return cur.rowcount


# -- access tokens ------------------------------------------------------------------------


async def insert_access_token(
    conn: aiosqlite.Connection,
    *,
    token_hash: str,
    user_id: str,
    device_id: str,
    created_ts: int,
    expires_ts: int | None = None,
    refresh_token_hash: str | None = None,
    refresh_expires_ts: int | None = None,
    previous_token_hash: str | None = None,
) -> None:
    """Insert a token (pair). The device must exist (foreign key)."""
    await conn.execute(
        INSERT_ACCESS_TOKEN,
        (
            token_hash,
            user_id,
            device_id,
            created_ts,
            expires_ts,
            refresh_token_hash,
            refresh_expires_ts,
            previous_token_hash,
        ),
    )


async def _select_one_token(
    conn: aiosqlite.Connection, sql: str, key: str
) -> AccessToken | None:
    async with conn.execute(sql, (key,)) as cur:
        row = await cur.fetchone()
    return AccessToken.from_row(row) if row is not None else None


async def select_token(conn: aiosqlite.Connection, token_hash: str) -> AccessToken | None:
    return await _select_one_token(conn, SELECT_TOKEN, token_hash)


async def select_token_by_refresh_hash(
    conn: aiosqlite.Connection, refresh_token_hash: str
) -> AccessToken | None:
    return await _select_one_token(conn, SELECT_TOKEN_BY_REFRESH, refresh_token_hash)


async def update_token_last_used(conn: aiosqlite.Connection, token_hash: str, ts: int) -> bool:
    cur = await conn.execute(UPDATE_TOKEN_LAST_USED, (ts, token_hash))
    return cur.rowcount == 1


async def update_tokens_soft_logged_out(
    conn: aiosqlite.Connection, user_id: str, device_id: str | None = None
) -> int:
    """Mark a user's tokens (or one device's) soft-logged-out; returns how many."""
    cur = await conn.execute(UPDATE_TOKENS_SOFT_LOGGED_OUT, (user_id, device_id))
    return cur.rowcount


async def delete_token(conn: aiosqlite.Connection, token_hash: str) -> bool:
    cur = await conn.execute(DELETE_TOKEN, (token_hash,))
    return cur.rowcount == 1


async def delete_replaced_token(conn: aiosqlite.Connection, token_hash: str) -> bool:
    """On first use of a refreshed token: revoke the pair it replaced. True if one was revoked."""
    cur = await conn.execute(DELETE_REPLACED_TOKEN, (token_hash,))
    deleted = cur.rowcount == 1
    # Cleared so that later uses of the new token skip this step cheaply.
    await conn.execute(CLEAR_PREVIOUS_TOKEN, (token_hash,))
    return deleted


async def delete_tokens_for_device(
    conn: aiosqlite.Connection, user_id: str, device_id: str
) -> int:
    cur = await conn.execute(DELETE_TOKENS_FOR_DEVICE, (user_id, device_id))
    return cur.rowcount


async def delete_tokens_for_user(
    conn: aiosqlite.Connection, user_id: str, *, except_token_hash: str | None = None
) -> int:
    """Revoke every token of a user, optionally keeping one (password change keeps the caller's)."""
    cur = await conn.execute(DELETE_TOKENS_FOR_USER, (user_id, except_token_hash))
    return cur.rowcount
