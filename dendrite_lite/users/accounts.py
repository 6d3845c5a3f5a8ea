"""Accounts service: create local users and check their passwords."""

from __future__ import annotations

import re
import time

from dendrite_lite.config import is_valid_server_name
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage.accounts import Account
from dendrite_lite.users.passwords import hash_password_async, needs_rehash, verify_password_async

__all__ = [
    "USER_ID_MAX_BYTES",
    "create_account",
    "check_password",
    "default_displayname",
    "get_account",
    "localpart_from_external",
    "make_user_id",
    "validate_user_id",
]

# Spec, appendices "User Identifiers" (v1.8+): localpart = 1*( a-z / 0-9 / - . = _ / + ).
_LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")
USER_ID_MAX_BYTES = 255


# Bytes kept as they are by localpart_from_external: the localpart grammar without "=", the
# escape character.
_KEPT_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-/+")


def localpart_from_external(name: str) -> str:
    """A localpart for a name from another system (a CAS user name), as the spec's appendix
    "Mapping from other character sets" suggests: the UTF-8 bytes, A-Z lower-cased, every other
    byte outside the grammar (and "=" itself) as =xx. "Cas_User!" -> "cas_user=21"."""
    out = []
    for byte in name.encode("utf-8"):
        if 0x41 <= byte <= 0x5A:  # A-Z
            byte += 0x20
        out.append(chr(byte) if byte in _KEPT_BYTES else f"={byte:02x}")
    return "".join(out)


def make_user_id(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def default_displayname(user_id: str) -> str:
    """The display name every new account starts with: its localpart, as Synapse gives one at
    every registration route (clients and SyTest expect a name in profiles and member events)."""
    return user_id[1:].split(":", 1)[0]


def validate_user_id(user_id: str) -> None:
    """Raise M_INVALID_USERNAME unless user_id is valid for a NEW account.

    Only the strict grammar is accepted: the "historical" user ids the spec still tolerates from
    other servers may not be created anew.
    """
    if not user_id.startswith("@") or ":" not in user_id:
        raise MatrixError(Errcode.INVALID_USERNAME, f"{user_id!r} is not a user id (@localpart:server)")
    localpart, _, server_name = user_id[1:].partition(":")
    if not _LOCALPART_RE.fullmatch(localpart):
        raise MatrixError(
            Errcode.INVALID_USERNAME,
            "User ID localpart may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'"
            " (and may not be empty)",
        )
    if not server_name:
        raise MatrixError(Errcode.INVALID_USERNAME, "User ID has no server name")
    if not is_valid_server_name(server_name):
        # A ':' in the requested username lands here: "@a:" + ":example.org".
        raise MatrixError(Errcode.INVALID_USERNAME, "User ID localpart may not contain ':'")
    if len(user_id.encode("utf-8")) > USER_ID_MAX_BYTES:
        raise MatrixError(
            Errcode.INVALID_USERNAME, f"User ID may not be longer than {USER_ID_MAX_BYTES} bytes"
        )


async def create_account(
    storage: Storage,
    user_id: str,
    password: str | None,
    *,
    admin: bool = False,
    displayname: str | None = None,
) -> None:
    """Create a local account. password=None makes an account that cannot log in by password.
    Its display name is `displayname`, else its localpart.

    Raises MatrixError M_INVALID_USERNAME or M_USER_IN_USE (also for deactivated accounts: user
    ids are never reused).
    """
    validate_user_id(user_id)
    password_hash = await hash_password_async(password) if password is not None else None
    now = int(time.time() * 1000)

    inserted = await storage.db.write(
        lambda conn: accounts_table.insert_account(
            conn, user_id=user_id, password_hash=password_hash, created_ts=now, is_admin=admin,
            displayname=displayname or default_displayname(user_id),
        )
    )
    if not inserted:
        raise MatrixError(Errcode.USER_IN_USE, "User ID already taken.")


async def get_account(storage: Storage, user_id: str) -> Account | None:
    return await storage.db.read(lambda conn: accounts_table.select_account(conn, user_id))


async def check_password(storage: Storage, user_id: str, password: str) -> bool:
    """True if password is the account's password.

    Only the password is checked: the caller decides what a deactivated account means (login
    answers M_USER_DEACTIVATED). An unknown user costs the same time as a wrong password.
    A hash made with older argon2 parameters is upgraded on a successful check.
    """
    account = await get_account(storage, user_id)
    stored = account.password_hash if account is not None else None
    if not await verify_password_async(stored, password):
        return False
    assert stored is not None
    if needs_rehash(stored):
        new_hash = await hash_password_async(password)
        await storage.db.write(
            lambda conn: accounts_table.update_password_hash(conn, user_id, new_hash)
        )
    return True
