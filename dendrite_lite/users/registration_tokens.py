"""Registration tokens service (spec: §Token-authenticated registration).

With `registration.mode = "token"`, /register offers one flow, [m.login.registration_token]. The
admin creates tokens (`create_token`, from the CLI or admin API) and shares them out of band.
A token may be limited in uses and in time; a use is counted in the same transaction that
creates the account (storage.registration.use_registration_token).
"""

from __future__ import annotations

import re
import secrets
import string

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import registration as registration_table
from dendrite_lite.storage.registration import RegistrationToken

__all__ = [
    "RegistrationToken",
    "create_token",
    "list_tokens",
    "get_token",
    "delete_token",
    "is_token_valid",
]

# Opaque identifier grammar (appendices §Opaque Identifiers), at most 64 characters (spec).
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_GENERATED_ALPHABET = string.ascii_letters + string.digits
_GENERATED_LENGTH = 16


async def create_token(
    storage: Storage,
    *,
    now: int,
    token: str | None = None,
    uses_allowed: int | None = None,
    expiry_ts: int | None = None,
) -> RegistrationToken:
    """Create a token (random when not given). 400 M_INVALID_PARAM for a malformed or taken token,
    negative uses_allowed, or an expiry in the past."""
    if token is None:
        token = "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(_GENERATED_LENGTH))
    elif not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise MatrixError(
            Errcode.INVALID_PARAM, "token must be 1-64 characters of A-Z a-z 0-9 . _ ~ -"
        )
    if uses_allowed is not None and (
        isinstance(uses_allowed, bool) or not isinstance(uses_allowed, int) or uses_allowed < 0
    ):
        raise MatrixError(Errcode.INVALID_PARAM, "uses_allowed must be a non-negative integer")
    if expiry_ts is not None and (
        isinstance(expiry_ts, bool) or not isinstance(expiry_ts, int) or expiry_ts <= now
    ):
        raise MatrixError(Errcode.INVALID_PARAM, "expiry_time must be a time in the future")
    created = await storage.db.write(
        lambda conn: registration_table.insert_registration_token(
            conn, token=token, created_ts=now, uses_allowed=uses_allowed, expiry_ts=expiry_ts
        )
    )
    if not created:
        raise MatrixError(Errcode.INVALID_PARAM, "Token already exists")
    return RegistrationToken(token, uses_allowed, 0, expiry_ts, now)


async def list_tokens(storage: Storage) -> list[RegistrationToken]:
    return await storage.db.read(registration_table.select_registration_tokens)


async def get_token(storage: Storage, token: str) -> RegistrationToken | None:
    return await storage.db.read(
        lambda conn: registration_table.select_registration_token(conn, token)
    )


async def delete_token(storage: Storage, token: str) -> bool:
    return await storage.db.write(
        lambda conn: registration_table.delete_registration_token(conn, token)
    )


async def is_token_valid(storage: Storage, token: str, *, now: int) -> bool:
    """GET /register/m.login.registration_token/validity: usable right now?"""
    found = await get_token(storage, token)
    return found is not None and found.is_valid(now)
