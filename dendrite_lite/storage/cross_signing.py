"""Cross-signing keys and the signatures uploaded through /keys/signatures/upload (schema in
migrations/0014_e2ee.sql). Keys are stored as uploaded; signatures one per row, merged into the
keys when they are read (e2ee/cross_signing.py decides who may see which)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.storage.e2e_keys import encode

__all__ = [
    "Signature",
    "insert_signature",
    "select_cross_signing_keys",
    "select_signatures",
    "upsert_cross_signing_key",
]

_CHUNK = 400

SELECT_KEYS = "SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = ?"
UPSERT_KEY = (
    "INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES (?, ?, ?)"
    " ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json"
)
INSERT_SIGNATURE = (
    "INSERT INTO e2e_cross_signing_signatures"
    " (user_id, key_id, signer_user_id, signer_key_id, signature) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, key_id, signer_user_id, signer_key_id)"
    " DO UPDATE SET signature = excluded.signature"
)


@dataclass(frozen=True, slots=True)
class Signature:
    user_id: str  # whose key is signed
    key_id: str  # a device id, or a cross-signing key's public key
    signer_user_id: str
    signer_key_id: str  # "ed25519:<device id or public key>"
    signature: str


async def select_cross_signing_keys(
    conn: aiosqlite.Connection, user_id: str
) -> dict[str, dict[str, Any]]:
    """key type (master, self_signing, user_signing) -> the key as uploaded."""
    async with conn.execute(SELECT_KEYS, (user_id,)) as cur:
        return {r[0]: json.loads(r[1]) for r in await cur.fetchall()}


async def upsert_cross_signing_key(
    conn: aiosqlite.Connection, user_id: str, key_type: str, key: dict[str, Any]
) -> None:
    await conn.execute(UPSERT_KEY, (user_id, key_type, encode(key)))


async def insert_signature(conn: aiosqlite.Connection, sig: Signature) -> None:
    await conn.execute(
        INSERT_SIGNATURE,
        (sig.user_id, sig.key_id, sig.signer_user_id, sig.signer_key_id, sig.signature),
    )


async def select_signatures(conn: aiosqlite.Connection, user_ids: Sequence[str]) -> list[Signature]:
    """Every uploaded signature of the users' keys."""
    out: list[Signature] = []
    for start in range(0, len(user_ids), _CHUNK):
        chunk = list(user_ids[start : start + _CHUNK])
        sql = (
            "SELECT user_id, key_id, signer_user_id, signer_key_id, signature"
            f" FROM e2e_cross_signing_signatures WHERE user_id IN ({','.join('?' * len(chunk))})"
        )
        async with conn.execute(sql, chunk) as cur:
            out.extend(Signature(*r) for r in await cur.fetchall())
    return out
