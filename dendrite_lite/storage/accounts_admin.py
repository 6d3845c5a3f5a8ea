"""Queries over the accounts table for the admin API (Synapse's user admin API): a page of
users filtered and sorted as GET /_synapse/admin/v2/users asks, one user with what that listing
shows (erased, last seen), and the rooms a user is joined to."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.storage.accounts import Account

__all__ = [
    "USER_ORDER_COLUMNS",
    "AdminUser",
    "UserFilter",
    "select_admin_user",
    "select_admin_users",
]

# The admin API's `order_by` values (Synapse's names) and the columns they sort by.
USER_ORDER_COLUMNS = {
    "name": "a.user_id",
    "is_guest": "a.is_guest",
    "admin": "a.is_admin",
    "user_type": "a.user_type",
    "deactivated": "a.deactivated",
    "shadow_banned": "a.shadow_banned",
    "displayname": "a.displayname",
    "avatar_url": "a.avatar_url",
    "creation_ts": "a.created_ts",
    "last_seen_ts": "last_seen_ts",
}

_SELECT = (
    "SELECT a.user_id, a.password_hash, a.is_admin, a.is_guest, a.deactivated, a.created_ts,"
    " a.displayname, a.avatar_url, a.shadow_banned, a.user_type,"
    " EXISTS (SELECT 1 FROM erased_users AS eu WHERE eu.user_id = a.user_id) AS erased,"
    " (SELECT MAX(d.last_seen_ts) FROM devices AS d WHERE d.user_id = a.user_id) AS last_seen_ts"
    " FROM accounts AS a"
)


@dataclass(frozen=True, slots=True)
class AdminUser:
    account: Account
    erased: bool
    last_seen_ts: int | None  # the latest of its devices' last use

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AdminUser:
        return cls(Account.from_row(row), bool(row["erased"]), row["last_seen_ts"])


@dataclass(frozen=True, slots=True)
class UserFilter:
    """Which users a listing shows (Synapse's parameters of the same names)."""

    name: str | None = None  # in the localpart or the display name
    user_id: str | None = None  # in the user id (ignored when name is given)
    guests: bool = True
    deactivated: bool | None = (
        False  # None: all; True: deactivated only; False: active only
    )
    admins: bool | None = None  # None: admins and others
    not_user_types: Sequence[str] = ()  # "" stands for regular users (no type)


def _like(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(f: UserFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if f.name:
        # The localpart only (never the server name, which may hold a ':' and a port) or the
        # display name, case-insensitively.
        clauses.append(
            "(substr(a.user_id, 2, instr(a.user_id, ':') - 2) LIKE ? ESCAPE '\\'"
            " OR lower(a.displayname) LIKE ? ESCAPE '\\')"
        )
        args += [f"%{_like(f.name)}%", f"%{_like(f.name)}%"]
    elif f.user_id:
        clauses.append("lower(a.user_id) LIKE ? ESCAPE '\\'")
        args.append(f"%{_like(f.user_id)}%")
    if not f.guests:
        clauses.append("a.is_guest = 0")
    if f.deactivated is not None:
        clauses.append("a.deactivated = ?")
        args.append(int(f.deactivated))
    if f.admins is not None:
        clauses.append("a.is_admin = ?")
        args.append(int(f.admins))
    types = [t for t in f.not_user_types if t]
    if "" in f.not_user_types:
        clauses.append("a.user_type IS NOT NULL")
    if types:
        marks = ",".join("?" * len(types))
        clauses.append(f"(a.user_type IS NULL OR a.user_type NOT IN ({marks}))")
        args += types
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


async def select_admin_users(
    conn: aiosqlite.Connection,
    f: UserFilter,
    *,
    order_by: str = "name",
    backwards: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[AdminUser], int]:
    """A page of the users `f` lets through, and how many it lets through in all. Sorted by
    `order_by` (a key of USER_ORDER_COLUMNS), then by user id ascending, so ties page stably."""
    column = USER_ORDER_COLUMNS[order_by]
    where, args = _where(f)
    async with conn.execute(f"SELECT COUNT(*) FROM accounts AS a{where}", args) as cur:
        row = await cur.fetchone()
    total = int(row[0]) if row is not None else 0
    direction = "DESC" if backwards else "ASC"
    sql = f"{_SELECT}{where} ORDER BY {column} {direction}, a.user_id ASC LIMIT ? OFFSET ?"
    async with conn.execute(sql, [*args, limit, offset]) as cur:
        users = [AdminUser.from_row(r) for r in await cur.fetchall()]
    return users, total


async def select_admin_user(
    conn: aiosqlite.Connection, user_id: str
) -> AdminUser | None:
    async with conn.execute(f"{_SELECT} WHERE a.user_id = ?", (user_id,)) as cur:
        row = await cur.fetchone()
    return AdminUser.from_row(row) if row is not None else None
