"""The accounts table: one row per local user (schema in migrations/0001_init.sql)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "Account",
    "delete_erased_user",
    "insert_account",
    "insert_erased_user",
    "select_account",
    "select_account_count",
    "select_erased_users",
    "select_joined_guests",
    "select_user_ids",
    "update_account_admin",
    "update_account_deactivated",
    "update_avatar_url",
    "update_displayname",
    "update_guest_to_user",
    "update_password_hash",
    "update_shadow_banned",
    "update_user_type",
]

_COLUMNS = (
    "user_id, password_hash, is_admin, is_guest, deactivated, created_ts, displayname, avatar_url,"
    " shadow_banned, user_type"
)
# ON CONFLICT DO NOTHING makes "does this user exist?" and "create it" one atomic step, so two
# concurrent registrations of the same name cannot both succeed.
INSERT_ACCOUNT = (
    "INSERT INTO accounts (user_id, password_hash, is_admin, is_guest, created_ts, displayname)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING"
)
SELECT_ACCOUNT = f"SELECT {_COLUMNS} FROM accounts WHERE user_id = ?"
SELECT_ACCOUNT_COUNT = "SELECT COUNT(*) FROM accounts WHERE is_guest = 0"
SELECT_USER_IDS = "SELECT user_id FROM accounts ORDER BY user_id LIMIT ? OFFSET ?"
UPDATE_PASSWORD_HASH = "UPDATE accounts SET password_hash = ? WHERE user_id = ?"
UPDATE_ADMIN = "UPDATE accounts SET is_admin = ? WHERE user_id = ?"
UPDATE_DEACTIVATED = "UPDATE accounts SET deactivated = ? WHERE user_id = ?"
INSERT_ERASED_USER = "INSERT INTO erased_users (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING"
DELETE_ERASED_USER = "DELETE FROM erased_users WHERE user_id = ?"
SELECT_ERASED_USERS = "SELECT user_id FROM erased_users WHERE user_id IN ({})"
UPDATE_DISPLAYNAME = "UPDATE accounts SET displayname = ? WHERE user_id = ?"
UPDATE_AVATAR_URL = "UPDATE accounts SET avatar_url = ? WHERE user_id = ?"
UPDATE_SHADOW_BANNED = "UPDATE accounts SET shadow_banned = ? WHERE user_id = ?"
UPDATE_USER_TYPE = "UPDATE accounts SET user_type = ? WHERE user_id = ?"


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str
    password_hash: str | None
    is_admin: bool
    is_guest: bool
    deactivated: bool
    created_ts: int
    displayname: str | None
    avatar_url: str | None
    # Migration 0026: the admin API's shadow ban (room sends reach nobody) and Synapse's user
    # type (None: a regular user; "bot", "support").
    shadow_banned: bool = False
    user_type: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Account:
        return cls(
            user_id=row["user_id"],
            password_hash=row["password_hash"],
            is_admin=bool(row["is_admin"]),
            is_guest=bool(row["is_guest"]),
            deactivated=bool(row["deactivated"]),
            created_ts=row["created_ts"],
            displayname=row["displayname"],
            avatar_url=row["avatar_url"],
            shadow_banned=bool(row["shadow_banned"]),
            user_type=row["user_type"],
        )


async def insert_account(
    conn: aiosqlite.Connection,
    *,
    user_id: str,
    password_hash: str | None,
    created_ts: int,
    is_admin: bool = False,
    is_guest: bool = False,
    displayname: str | None = None,
) -> bool:
    """Insert a new account; False (and no change) if user_id already exists."""
    cur = await conn.execute(
        INSERT_ACCOUNT,
        (user_id, password_hash, int(is_admin), int(is_guest), created_ts, displayname),
    )
    return cur.rowcount == 1


async def select_account(conn: aiosqlite.Connection, user_id: str) -> Account | None:
    async with conn.execute(SELECT_ACCOUNT, (user_id,)) as cur:
        row = await cur.fetchone()
    return Account.from_row(row) if row is not None else None


async def select_account_count(conn: aiosqlite.Connection) -> int:
    """Number of non-guest accounts (deactivated ones included)."""
    async with conn.execute(SELECT_ACCOUNT_COUNT) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_user_ids(
    conn: aiosqlite.Connection, *, limit: int = 100, offset: int = 0
) -> list[str]:
    async with conn.execute(SELECT_USER_IDS, (limit, offset)) as cur:
        return [row[0] for row in await cur.fetchall()]


async def _update(conn: aiosqlite.Connection, sql: str, value: object, user_id: str) -> bool:
    cur = await conn.execute(sql, (value, user_id))
    return cur.rowcount == 1


async def update_password_hash(
    conn: aiosqlite.Connection, user_id: str, password_hash: str | None
) -> bool:
    """Set (or clear) the password hash; False if there is no such account."""
    return await _update(conn, UPDATE_PASSWORD_HASH, password_hash, user_id)


async def update_account_admin(conn: aiosqlite.Connection, user_id: str, is_admin: bool) -> bool:
    return await _update(conn, UPDATE_ADMIN, int(is_admin), user_id)


async def insert_erased_user(conn: aiosqlite.Connection, user_id: str) -> None:
    """Record that the user asked for erasure when deactivating (their events are then served
    redacted to other servers)."""
    await conn.execute(INSERT_ERASED_USER, (user_id,))


async def delete_erased_user(conn: aiosqlite.Connection, user_id: str) -> None:
    """A reactivated account is no longer erased (what it sends next is shown as sent)."""
    await conn.execute(DELETE_ERASED_USER, (user_id,))


async def select_erased_users(conn: aiosqlite.Connection, user_ids: Iterable[str]) -> set[str]:
    """Those of `user_ids` that were erased."""
    ids = sorted(set(user_ids))
    if not ids:
        return set()
    sql = SELECT_ERASED_USERS.format(",".join("?" * len(ids)))
    async with conn.execute(sql, ids) as cur:
        return {row[0] for row in await cur.fetchall()}


async def update_account_deactivated(
    conn: aiosqlite.Connection, user_id: str, deactivated: bool
) -> bool:
    return await _update(conn, UPDATE_DEACTIVATED, int(deactivated), user_id)


async def update_displayname(
    conn: aiosqlite.Connection, user_id: str, displayname: str | None
) -> bool:
    return await _update(conn, UPDATE_DISPLAYNAME, displayname, user_id)


async def update_avatar_url(
    conn: aiosqlite.Connection, user_id: str, avatar_url: str | None
) -> bool:
    return await _update(conn, UPDATE_AVATAR_URL, avatar_url, user_id)


async def update_shadow_banned(
    conn: aiosqlite.Connection, user_id: str, shadow_banned: bool
) -> bool:
    return await _update(conn, UPDATE_SHADOW_BANNED, int(shadow_banned), user_id)


async def update_user_type(conn: aiosqlite.Connection, user_id: str, user_type: str | None) -> bool:
    return await _update(conn, UPDATE_USER_TYPE, user_type, user_id)


SELECT_JOINED_GUESTS = (
    "SELECT cs.state_key FROM current_state AS cs JOIN accounts AS a ON a.user_id = cs.state_key"
    " WHERE cs.room_id = ? AND cs.type = 'm.room.member' AND cs.membership = 'join'"
    " AND a.is_guest = 1 ORDER BY cs.state_key"
)


UPGRADE_GUEST = "UPDATE accounts SET password_hash = ?, is_guest = 0 WHERE user_id = ? AND is_guest = 1"


async def update_guest_to_user(conn: aiosqlite.Connection, user_id: str, password_hash: str) -> bool:
    """A guest account becomes a full one (False: no such guest, e.g. already upgraded)."""
    cur = await conn.execute(UPGRADE_GUEST, (password_hash, user_id))
    return cur.rowcount == 1


async def select_joined_guests(conn: aiosqlite.Connection, room_id: str) -> list[str]:
    """Our guest accounts joined to the room."""
    async with conn.execute(SELECT_JOINED_GUESTS, (room_id,)) as cur:
        return [row[0] for row in await cur.fetchall()]
