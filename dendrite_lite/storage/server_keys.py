"""Other servers' verify keys, and the signed key responses we fetched directly (which we serve
again as a notary). Schema in migrations/0007_server_keys.sql (see `server_keys` there)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

__all__ = [
    "StoredKey",
    "KeyResponse",
    "upsert_server_keys",
    "select_server_keys",
    "upsert_key_responses",
    "select_key_responses",
]


@dataclass(frozen=True, slots=True)
class StoredKey:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int | None  # already capped to fetch time + 7 days; None for old keys
    expired_ts: int | None  # set once the key was seen in old_verify_keys
    fetched_ts: int
    source: str  # the server that told us: the key's own server or a notary


@dataclass(frozen=True, slots=True)
class KeyResponse:
    server_name: str
    key_id: str
    response_json: str  # the server's own signed /_matrix/key/v2/server answer, as received
    valid_until_ts: int
    fetched_ts: int


# A refetch never shortens a validity we already know (a notary may relay an older response),
# and once a key was reported old it stays old.
UPSERT_KEY = (
    "INSERT INTO server_keys"
    " (server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, source)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (server_name, key_id) DO UPDATE SET"
    " verify_key = excluded.verify_key,"
    " valid_until_ts = CASE WHEN excluded.valid_until_ts IS NULL THEN server_keys.valid_until_ts"
    "   ELSE max(coalesce(server_keys.valid_until_ts, 0), excluded.valid_until_ts) END,"
    " expired_ts = coalesce(excluded.expired_ts, server_keys.expired_ts),"
    " fetched_ts = excluded.fetched_ts, source = excluded.source"
)
SELECT_KEYS = (
    "SELECT server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, source"
    " FROM server_keys WHERE server_name = ? ORDER BY key_id"
)
UPSERT_RESPONSE = (
    "INSERT INTO server_key_responses"
    " (server_name, key_id, response_json, valid_until_ts, fetched_ts) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (server_name, key_id) DO UPDATE SET response_json = excluded.response_json,"
    " valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts"
    " WHERE excluded.valid_until_ts >= server_key_responses.valid_until_ts"
)
SELECT_RESPONSES = (
    "SELECT server_name, key_id, response_json, valid_until_ts, fetched_ts"
    " FROM server_key_responses WHERE server_name = ? ORDER BY key_id"
)


def _key(row: sqlite3.Row) -> StoredKey:
    return StoredKey(*tuple(row))


async def upsert_server_keys(conn: aiosqlite.Connection, keys: Iterable[StoredKey]) -> None:
    await conn.executemany(
        UPSERT_KEY,
        [
            (k.server_name, k.key_id, k.verify_key, k.valid_until_ts, k.expired_ts, k.fetched_ts, k.source)
            for k in keys
        ],
    )


async def select_server_keys(conn: aiosqlite.Connection, server_name: str) -> list[StoredKey]:
    async with conn.execute(SELECT_KEYS, (server_name,)) as cur:
        return [_key(r) for r in await cur.fetchall()]


async def upsert_key_responses(
    conn: aiosqlite.Connection,
    server_name: str,
    key_ids: Iterable[str],
    response_json: str,
    valid_until_ts: int,
    fetched_ts: int,
) -> None:
    """Remember a response under each key id it vouches for; an older response (smaller
    valid_until_ts) never replaces a newer one."""
    await conn.executemany(
        UPSERT_RESPONSE,
        [(server_name, k, response_json, valid_until_ts, fetched_ts) for k in key_ids],
    )


async def select_key_responses(conn: aiosqlite.Connection, server_name: str) -> list[KeyResponse]:
    async with conn.execute(SELECT_RESPONSES, (server_name,)) as cur:
        return [KeyResponse(*tuple(r)) for r in await cur.fetchall()]
