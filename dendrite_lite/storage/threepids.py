"""Third-party identifiers (emails) kept by the homeserver: validation sessions of /requestToken
and the addresses each account has. Schema in migrations/0037_threepids.sql; the service is
users/threepids.py.

Addresses are stored as the caller normalised them (users.threepids.canonical_address: email
lower-cased); these functions compare them as given, so normalise an address before a lookup.

For other modules (3PID removal, deactivation), each inside `storage.db.write`:
    delete_user_threepid(conn, user_id, medium, address) -> bool  (False: the user has no such)
    delete_all_user_threepids(conn, user_id) -> list[UserThreepid]  (what it removed)
    select_user_id_for_threepid(conn, medium, address) -> str | None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "UserThreepid",
    "ValidationSession",
    "delete_all_user_threepids",
    "delete_user_threepid",
    "delete_validation_session",
    "insert_user_threepid",
    "insert_validation_session",
    "select_user_id_for_threepid",
    "select_user_threepids",
    "select_validation_session",
    "select_validation_session_by_key",
    "select_validation_token_hash",
    "update_validation_resent",
    "update_validation_validated",
]

_SESSION_COLUMNS = (
    "sid, client_secret, medium, address, purpose, send_attempt, next_link, created_ts,"
    " validated_ts, expires_ts"
)
INSERT_SESSION = (
    f"INSERT INTO threepid_validation_sessions ({_SESSION_COLUMNS}, token_hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DELETE_EXPIRED_SESSIONS = "DELETE FROM threepid_validation_sessions WHERE expires_ts <= ?"
SELECT_SESSION_BY_KEY = (
    f"SELECT {_SESSION_COLUMNS} FROM threepid_validation_sessions"
    " WHERE medium = ? AND address = ? AND client_secret = ? AND purpose = ? AND expires_ts > ?"
)
SELECT_SESSION = (
    f"SELECT {_SESSION_COLUMNS} FROM threepid_validation_sessions"
    " WHERE sid = ? AND client_secret = ? AND expires_ts > ?"
)
SELECT_TOKEN_HASH = "SELECT token_hash FROM threepid_validation_sessions WHERE sid = ?"
UPDATE_RESENT = (
    "UPDATE threepid_validation_sessions SET token_hash = ?, send_attempt = ?, next_link = ?"
    " WHERE sid = ?"
)
UPDATE_VALIDATED = (
    "UPDATE threepid_validation_sessions SET validated_ts = ?"
    " WHERE sid = ? AND validated_ts IS NULL"
)
DELETE_SESSION = "DELETE FROM threepid_validation_sessions WHERE sid = ?"

_THREEPID_COLUMNS = "user_id, medium, address, validated_at, added_at"
INSERT_THREEPID = (
    f"INSERT INTO user_threepids ({_THREEPID_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (medium, address) DO NOTHING"
)
SELECT_OWNER = "SELECT user_id FROM user_threepids WHERE medium = ? AND address = ?"
SELECT_USER_THREEPIDS = (
    f"SELECT {_THREEPID_COLUMNS} FROM user_threepids WHERE user_id = ? ORDER BY added_at, address"
)
DELETE_THREEPID = "DELETE FROM user_threepids WHERE user_id = ? AND medium = ? AND address = ?"
DELETE_USER_THREEPIDS = f"DELETE FROM user_threepids WHERE user_id = ? RETURNING {_THREEPID_COLUMNS}"


@dataclass(frozen=True, slots=True)
class ValidationSession:
    sid: str
    client_secret: str
    medium: str
    address: str
    purpose: str  # register | add | password (users.threepids)
    send_attempt: int
    next_link: str | None
    created_ts: int
    validated_ts: int | None
    expires_ts: int


@dataclass(frozen=True, slots=True)
class UserThreepid:
    user_id: str
    medium: str
    address: str
    validated_at: int
    added_at: int

    def to_json(self) -> dict[str, Any]:
        """One entry of GET /account/3pid."""
        return {
            "medium": self.medium, "address": self.address,
            "validated_at": self.validated_at, "added_at": self.added_at,
        }


def _session(row: Any) -> ValidationSession:
    return ValidationSession(
        row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6], int(row[7]),
        None if row[8] is None else int(row[8]), int(row[9]),
    )


def _threepid(row: Any) -> UserThreepid:
    return UserThreepid(row[0], row[1], row[2], int(row[3]), int(row[4]))


# -- validation sessions ----------------------------------------------------------------------


async def insert_validation_session(
    conn: aiosqlite.Connection, session: ValidationSession, token_hash: str
) -> None:
    """A new session; expired ones go as new ones come, so the table stays small."""
    await conn.execute(DELETE_EXPIRED_SESSIONS, (session.created_ts,))
    await conn.execute(INSERT_SESSION, (
        session.sid, session.client_secret, session.medium, session.address, session.purpose,
        session.send_attempt, session.next_link, session.created_ts, session.validated_ts,
        session.expires_ts, token_hash,
    ))


async def select_validation_session_by_key(
    conn: aiosqlite.Connection, medium: str, address: str, client_secret: str, purpose: str,
    now: int,
) -> ValidationSession | None:
    """The unexpired session a /requestToken with these parameters started before."""
    async with conn.execute(
        SELECT_SESSION_BY_KEY, (medium, address, client_secret, purpose, now)
    ) as cur:
        row = await cur.fetchone()
    return _session(row) if row is not None else None


async def select_validation_session(
    conn: aiosqlite.Connection, sid: str, client_secret: str, now: int
) -> ValidationSession | None:
    """The unexpired session `sid`, if `client_secret` is its secret."""
    async with conn.execute(SELECT_SESSION, (sid, client_secret, now)) as cur:
        row = await cur.fetchone()
    return _session(row) if row is not None else None


async def select_validation_token_hash(conn: aiosqlite.Connection, sid: str) -> str | None:
    async with conn.execute(SELECT_TOKEN_HASH, (sid,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None


async def update_validation_resent(
    conn: aiosqlite.Connection, sid: str, token_hash: str, send_attempt: int,
    next_link: str | None,
) -> None:
    """A higher send_attempt mailed a new link (the old one stops working)."""
    await conn.execute(UPDATE_RESENT, (token_hash, send_attempt, next_link, sid))


async def update_validation_validated(conn: aiosqlite.Connection, sid: str, now: int) -> None:
    """The link was followed (a second visit keeps the first time)."""
    await conn.execute(UPDATE_VALIDATED, (now, sid))


async def delete_validation_session(conn: aiosqlite.Connection, sid: str) -> None:
    """The session was used (registration, password reset, address added)."""
    await conn.execute(DELETE_SESSION, (sid,))


# -- the addresses of accounts ----------------------------------------------------------------


async def insert_user_threepid(
    conn: aiosqlite.Connection, user_id: str, medium: str, address: str, *,
    validated_at: int, added_at: int,
) -> bool:
    """Give `user_id` the address. False when another account has it; the user's own address
    again is True and keeps its first timestamps."""
    await conn.execute(INSERT_THREEPID, (user_id, medium, address, validated_at, added_at))
    return await select_user_id_for_threepid(conn, medium, address) == user_id


async def select_user_id_for_threepid(
    conn: aiosqlite.Connection, medium: str, address: str
) -> str | None:
    """The account the address belongs to (login by m.id.thirdparty, password reset)."""
    async with conn.execute(SELECT_OWNER, (medium, address)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row is not None else None


async def select_user_threepids(conn: aiosqlite.Connection, user_id: str) -> list[UserThreepid]:
    """GET /account/3pid: oldest first."""
    async with conn.execute(SELECT_USER_THREEPIDS, (user_id,)) as cur:
        return [_threepid(row) for row in await cur.fetchall()]


async def delete_user_threepid(
    conn: aiosqlite.Connection, user_id: str, medium: str, address: str
) -> bool:
    """Remove one of the user's addresses (normalised); False when the user had no such."""
    cur = await conn.execute(DELETE_THREEPID, (user_id, medium, address))
    return cur.rowcount > 0


async def delete_all_user_threepids(conn: aiosqlite.Connection, user_id: str) -> list[UserThreepid]:
    """Remove every address of the user (deactivation); returns what was removed."""
    async with conn.execute(DELETE_USER_THREEPIDS, (user_id,)) as cur:
        return [_threepid(row) for row in await cur.fetchall()]
