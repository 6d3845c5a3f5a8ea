"""Sessions: password login, access and refresh tokens, request authentication, logout.

Spec: client-server-api §Client Authentication (§Using access tokens, §Relationship between access
tokens and devices, §Refreshing access tokens, §Soft logout, §Login).

A session is one row of access_tokens bound to one device. Only hashes of tokens are stored
(storage/devices.py). Sessions of clients that announce refresh-token support get access tokens
that expire after `ACCESS_TOKEN_LIFETIME_MS`; other clients get tokens that never expire, which
is what the spec allows for clients without refresh support.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage.devices import AccessToken, hash_token
from dendrite_lite.users.accounts import check_password, get_account, make_user_id
from dendrite_lite.users.devices import delete_all_devices, delete_devices

__all__ = [
    "ACCESS_TOKEN_LIFETIME_MS",
    "LAST_SEEN_INTERVAL_MS",
    "Requester",
    "Session",
    "ThirdPartyId",
    "authenticate",
    "generate_device_id",
    "insert_session",
    "login_options",
    "login_rate_key",
    "login_with_password",
    "logout",
    "logout_all",
    "now_ms",
    "open_session",
    "parse_identifier",
    "refresh_session",
    "require_password",
    "resolve_identifier",
    "user_id_from_identifier",
    "validate_device_id",
]

# Synapse's default for refreshable access tokens: short enough that a leaked token is useful
# only briefly, long enough that a client refreshes rarely.
ACCESS_TOKEN_LIFETIME_MS = 5 * 60 * 1000
# last_used/last_seen are written at most this often per token: a write per request would cost
# an fsync per request for information only /devices shows.
LAST_SEEN_INTERVAL_MS = 60 * 1000
_DEVICE_ID_ALPHABET = string.ascii_uppercase
_DEVICE_ID_LENGTH = 10
# Device ids are the client's choice within this bound; a key in the devices table must stay small.
MAX_DEVICE_ID_LENGTH = 255


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Session:
    """What login, registration and refresh hand back to the client."""

    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None = None
    expires_in_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "user_id": self.user_id,
            "access_token": self.access_token,
            "device_id": self.device_id,
            # Deprecated in the spec but still read by older clients and bots.
            "home_server": self.user_id.partition(":")[2],
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.expires_in_ms is not None:
            body["expires_in_ms"] = self.expires_in_ms
        return body


@dataclass(frozen=True, slots=True)
class Requester:
    """Who made an authenticated request: every client endpoint gets one from `authenticate`."""

    user_id: str
    device_id: str
    is_admin: bool
    is_guest: bool
    token_hash: str
    # Set by a server admin (/_synapse/admin/v1/users/{userId}/shadow_ban): the user's room
    # sends and invites answer success but reach nobody (rooms/shadow_ban.py).
    shadow_banned: bool = False
    # The id of the application service whose as_token made the request (identity assertion:
    # user_id is then the user it acts as); None for a user's own token.
    app_service: str | None = None


def generate_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(_DEVICE_ID_LENGTH))


def _new_token(prefix: str) -> str:
    # 256 random bits; the prefix only helps people (and secret scanners) recognise a leaked one.
    return prefix + secrets.token_urlsafe(32)


def validate_device_id(device_id: object) -> str:
    if not isinstance(device_id, str) or not device_id:
        raise MatrixError(Errcode.INVALID_PARAM, "device_id must be a non-empty string")
    if len(device_id) > MAX_DEVICE_ID_LENGTH:
        raise MatrixError(
            Errcode.INVALID_PARAM, f"device_id may be at most {MAX_DEVICE_ID_LENGTH} characters"
        )
    return device_id


async def insert_session(
    conn: aiosqlite.Connection,
    user_id: str,
    *,
    device_id: str | None,
    display_name: str | None,
    ip: str | None,
    with_refresh: bool,
    now: int,
    lifetime_ms: int = ACCESS_TOKEN_LIFETIME_MS,
) -> Session:
    """Inside a write transaction: create (or reuse) a device and give it a new token (pair).

    A device id the user already has is reused with its display name and keys, and the tokens it
    had are revoked (spec: §Relationship between access tokens and devices).
    """
    if device_id is None:
        device_id = generate_device_id()
    created = await devices_table.insert_device(
        conn, user_id=user_id, device_id=device_id, created_ts=now, display_name=display_name, ip=ip
    )
    if not created:
        await devices_table.delete_tokens_for_device(conn, user_id, device_id)
    access_token = _new_token("dla_")
    refresh_token = _new_token("dlr_") if with_refresh else None
    await devices_table.insert_access_token(
        conn,
        token_hash=hash_token(access_token),
        user_id=user_id,
        device_id=device_id,
        created_ts=now,
        expires_ts=now + lifetime_ms if with_refresh else None,
        refresh_token_hash=hash_token(refresh_token) if refresh_token else None,
    )
    return Session(
        user_id, device_id, access_token, refresh_token, lifetime_ms if with_refresh else None
    )


async def open_session(
    storage: Storage,
    user_id: str,
    *,
    device_id: str | None = None,
    display_name: str | None = None,
    ip: str | None = None,
    with_refresh: bool = False,
    now: int | None = None,
    lifetime_ms: int = ACCESS_TOKEN_LIFETIME_MS,
) -> Session:
    """Log an (already authenticated) user in on a device; see insert_session. A new device
    enters the device list stream (as in Synapse): the user's other devices and room-mates
    hear of it once the caller wakes them (DeviceListService.changed)."""
    at = now if now is not None else now_ms()

    async def txn(conn: aiosqlite.Connection) -> Session:
        known = device_id is not None and (
            await devices_table.select_device(conn, user_id, device_id) is not None
        )
        session = await insert_session(
            conn,
            user_id,
            device_id=device_id,
            display_name=display_name,
            ip=ip,
            with_refresh=with_refresh,
            now=at,
            lifetime_ms=lifetime_ms,
        )
        if not known:
            await device_lists_table.insert_device_list_change(conn, user_id, session.device_id)
        return session

    return await storage.db.write(txn)


# -- identifying a user (login and UIA m.login.password) ------------------------------------


def _user_id_from_text(user: object, server_name: str) -> str:
    if not isinstance(user, str) or not user:
        raise MatrixError(Errcode.INVALID_PARAM, "'user' must be a non-empty string")
    if user.startswith("@"):
        localpart, sep, server = user[1:].partition(":")
        if not sep or server != server_name:
            # Not one of ours: there is no such account here, which login reports as 403.
            raise MatrixError(Errcode.FORBIDDEN, "Invalid username or password")
    else:
        localpart = user
    # New accounts are lower-case only, so "Alice" can only mean "alice".
    return make_user_id(localpart.lower(), server_name)


@dataclass(frozen=True, slots=True)
class ThirdPartyId:
    medium: str
    address: str  # as sent; lookups canonicalise it (users.threepids.canonical_address)


def parse_identifier(body: dict[str, Any], server_name: str) -> str | ThirdPartyId:
    """What an `identifier` object (or the deprecated `user`/`medium`/`address`) names: a user
    id, or a third-party id to look up (spec §Identifier types). A phone number (m.id.phone)
    names nobody here: 403 M_FORBIDDEN, as the spec asks for unknown 3PIDs."""
    identifier = body.get("identifier")
    if identifier is None:
        if "user" in body:
            return _user_id_from_text(body["user"], server_name)
        if "medium" in body or "address" in body:
            identifier = {"type": "m.id.thirdparty", **{
                k: body[k] for k in ("medium", "address") if k in body
            }}
        else:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing 'identifier'")
    if not isinstance(identifier, dict):
        raise MatrixError(Errcode.INVALID_PARAM, "'identifier' must be an object")
    kind = identifier.get("type")
    if kind == "m.id.user":
        return _user_id_from_text(identifier.get("user"), server_name)
    if kind == "m.id.thirdparty":
        required = ("medium", "address")
    elif kind == "m.id.phone":
        required = ("country", "phone")
    else:
        raise MatrixError(Errcode.UNKNOWN, "Unknown login identifier type", status=400)
    for key in required:
        if not isinstance(identifier.get(key), str):
            raise MatrixError(Errcode.MISSING_PARAM, f"Identifier of type {kind} needs '{key}'")
    if kind == "m.id.thirdparty":
        return ThirdPartyId(identifier["medium"], identifier["address"])
    raise MatrixError(Errcode.FORBIDDEN, "Third-party identifier is not known to this server")


def user_id_from_identifier(body: dict[str, Any], server_name: str) -> str:
    """The user id an identifier names, for callers that take no third-party ids (an
    application service's login): one names nobody, 403 M_FORBIDDEN."""
    named = parse_identifier(body, server_name)
    if isinstance(named, ThirdPartyId):
        raise MatrixError(Errcode.FORBIDDEN, "Third-party identifier is not known to this server")
    return named


async def resolve_identifier(
    storage: Storage, body: dict[str, Any], server_name: str
) -> str | None:
    """The user id an identifier names, a third-party id looked up among our accounts' addresses
    (None when no account has it)."""
    named = parse_identifier(body, server_name)
    if not isinstance(named, ThirdPartyId):
        return named
    # Imported here: users.threepids imports this module (now_ms).
    from dendrite_lite.users.threepids import canonical_address, user_id_for_threepid

    return await user_id_for_threepid(
        storage, named.medium, canonical_address(named.medium, named.address)
    )


def login_rate_key(body: dict[str, Any], server_name: str) -> str:
    """The per-account login bucket's key: the lower-cased user id, or medium:address, so
    guessing the password of an address costs what guessing the account's does."""
    named = parse_identifier(body, server_name)
    if isinstance(named, ThirdPartyId):
        return f"{named.medium}:{named.address.strip().lower()}"
    return named.lower()


async def login_with_password(
    storage: Storage,
    server_name: str,
    body: dict[str, Any],
    *,
    ip: str | None = None,
    now: int | None = None,
) -> Session:
    """POST /login with type m.login.password (body as sent); rate limits are the caller's.
    An address no account has answers as a wrong password does (403 M_FORBIDDEN, after the
    same argon2 work), so logins cannot tell which addresses have accounts."""
    # "" is nobody's id: an unknown address then fails as a wrong password does.
    user_id = await resolve_identifier(storage, body, server_name) or ""
    password = body.get("password")
    if not isinstance(password, str):
        raise MatrixError(Errcode.MISSING_PARAM, "Missing or invalid 'password'")
    options = login_options(body)
    await require_password(storage, user_id, password)
    return await open_session(storage, user_id, ip=ip, now=now, **options)


def login_options(body: dict[str, Any]) -> dict[str, Any]:
    """What every POST /login type may ask for the new session: device_id,
    initial_device_display_name, refresh_token (as open_session's keyword arguments)."""
    device_id = body.get("device_id")
    if device_id is not None:
        validate_device_id(device_id)
    display_name = body.get("initial_device_display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise MatrixError(Errcode.INVALID_PARAM, "initial_device_display_name must be a string")
    with_refresh = body.get("refresh_token", False)
    if not isinstance(with_refresh, bool):
        raise MatrixError(Errcode.INVALID_PARAM, "refresh_token must be a boolean")
    return {"device_id": device_id, "display_name": display_name, "with_refresh": with_refresh}


async def require_password(storage: Storage, user_id: str, password: str) -> None:
    """Raise 403 M_FORBIDDEN unless password is right, M_USER_DEACTIVATED if it is but the
    account is deactivated (checked second, so strangers cannot probe which accounts are)."""
    if not await check_password(storage, user_id, password):
        raise MatrixError(Errcode.FORBIDDEN, "Invalid username or password")
    account = await get_account(storage, user_id)
    if account is None or account.deactivated:
        raise MatrixError(Errcode.USER_DEACTIVATED, "This account has been deactivated")


# -- using tokens ---------------------------------------------------------------------------


def _unknown_token(soft_logout: bool, msg: str) -> MatrixError:
    return MatrixError(Errcode.UNKNOWN_TOKEN, msg, soft_logout=soft_logout)


async def authenticate(
    storage: Storage,
    access_token: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    now: int | None = None,
) -> Requester:
    """The requester an access token belongs to, or 401 M_UNKNOWN_TOKEN.

    An expired or soft-logged-out token answers soft_logout=true, so the client refreshes or
    logs in again on the same device, keeping its keys. The device's last address, user agent
    and time (GET /devices, /admin/whois) are written at most once a LAST_SEEN_INTERVAL_MS.
    """
    at = now if now is not None else now_ms()
    token_hash = hash_token(access_token)

    async def read(conn: aiosqlite.Connection) -> tuple[AccessToken | None, Any]:
        token = await devices_table.select_token(conn, token_hash)
        if token is None:
            return None, None
        return token, await accounts_table.select_account(conn, token.user_id)

    token, account = await storage.db.read(read)
    if token is None or account is None or account.deactivated:
        raise _unknown_token(False, "Unrecognised access token")
    if token.soft_logged_out:
        raise _unknown_token(True, "Soft logged out")
    if token.is_expired(at):
        raise _unknown_token(True, "Access token has expired")
    stale = token.last_used_ts is None or at - token.last_used_ts >= LAST_SEEN_INTERVAL_MS
    if token.previous_token_hash is not None or stale:
        await storage.db.write(lambda conn: _record_use(conn, token, at, ip, user_agent))
    return Requester(
        token.user_id, token.device_id, account.is_admin, account.is_guest, token_hash,
        shadow_banned=account.shadow_banned,
    )


async def _record_use(
    conn: aiosqlite.Connection, token: AccessToken, at: int, ip: str | None, user_agent: str | None
) -> None:
    if token.previous_token_hash is not None:
        # First use of a refreshed token: now the pair it replaced may go (§Refreshing).
        await devices_table.delete_replaced_token(conn, token.token_hash)
    await devices_table.update_token_last_used(conn, token.token_hash, at)
    await devices_table.update_device_last_seen(
        conn, token.user_id, token.device_id, ts=at, ip=ip, user_agent=user_agent
    )


async def refresh_session(
    storage: Storage,
    refresh_token: str,
    *,
    now: int | None = None,
    lifetime_ms: int = ACCESS_TOKEN_LIFETIME_MS,
) -> Session:
    """POST /refresh: a new token pair on the same device.

    The old pair stays valid until the new access or refresh token is first used, so a client
    that lost the response can refresh again with the old refresh token.
    """
    at = now if now is not None else now_ms()
    old_hash = hash_token(refresh_token)

    async def txn(conn: aiosqlite.Connection) -> Session:
        old = await devices_table.select_token_by_refresh_hash(conn, old_hash)
        if old is None or old.soft_logged_out:
            raise _unknown_token(False, "Unknown refresh token")
        if old.refresh_expires_ts is not None and at >= old.refresh_expires_ts:
            raise _unknown_token(True, "Refresh token has expired")
        # Using this refresh token is the first use of this pair: the one before it may go.
        await devices_table.delete_replaced_token(conn, old.token_hash)
        access, new_refresh = _new_token("dla_"), _new_token("dlr_")
        await devices_table.insert_access_token(
            conn,
            token_hash=hash_token(access),
            user_id=old.user_id,
            device_id=old.device_id,
            created_ts=at,
            expires_ts=at + lifetime_ms,
            refresh_token_hash=hash_token(new_refresh),
            previous_token_hash=old.token_hash,
        )
        return Session(old.user_id, old.device_id, access, new_refresh, lifetime_ms)

    return await storage.db.write(txn)


async def logout(storage: Storage, requester: Requester) -> None:
    """POST /logout: the token's device goes, and with it every token of that device."""
    await delete_devices(storage, requester.user_id, [requester.device_id])


async def logout_all(storage: Storage, user_id: str) -> None:
    """POST /logout/all: every device of the user goes, with every token."""
    await delete_all_devices(storage, user_id)
