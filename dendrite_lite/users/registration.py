"""Registration service: POST /register (users through UIA, guests), /register/available, and
Synapse-compatible shared-secret registration.

Spec: client-server-api §Account registration, data/api/client-server/registration.yaml.
`registration.mode` decides: "closed" refuses (403), "open" offers [m.login.dummy], "token"
offers [m.login.registration_token]. Shared-secret registration works in every mode: whoever
knows `registration.shared_secret` is the admin. Open registration asks for a reCAPTCHA when
`registration.recaptcha_*` keys are set; a registration token, an appservice's token or the
shared secret already show the admin's consent, so those never ask (Synapse asks token holders
too). With outgoing email set up ([email]) and `registration.email` not "off", each flow also
comes with m.login.email.identity in place of its dummy stage (or after its last stage):
offered beside the others ("optional"), or instead of them ("required"). The address confirmed
that way becomes the new account's (users/threepids.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.config import Config
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.ratelimit import RateLimiter
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import registration as registration_table
from dendrite_lite.users.accounts import (
    default_displayname,
    get_account,
    make_user_id,
    validate_user_id,
)
from dendrite_lite.users.passwords import hash_password_async
from dendrite_lite.users.threepids import add_validated_threepid
from dendrite_lite.users.sessions import (
    Session,
    authenticate,
    insert_session,
    now_ms,
    validate_device_id,
)
from dendrite_lite.users.uia import (
    DUMMY,
    EMAIL_IDENTITY,
    RECAPTCHA,
    REGISTRATION_TOKEN,
    Flow,
    UiaSessions,
)

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "Registered",
    "SharedSecretNonces",
    "captcha_site_key",
    "check_username_available",
    "register_guest",
    "register_user",
    "register_with_shared_secret",
    "registration_flows",
    "registration_params",
]

# argon2 takes any length, but a megabyte "password" is a denial-of-service, not a password.
MAX_PASSWORD_LENGTH = 512
_GENERATED_LOCALPART_DIGITS = 10


@dataclass(frozen=True, slots=True)
class Registered:
    """The /register response: a session unless the client asked for inhibit_login."""

    user_id: str
    session: Session | None

    def to_json(self) -> dict[str, Any]:
        if self.session is not None:
            return self.session.to_json()
        return {"user_id": self.user_id, "home_server": self.user_id.partition(":")[2]}


def registration_flows(config: Config) -> list[Flow]:
    flows = _flows_without_email(config)
    email = config.registration.email if config.email.enabled else "off"
    if email == "off":
        return flows
    # The email stage takes the dummy stage's place (it also tells the flows apart), so a plain
    # [m.login.dummy] becomes [m.login.email.identity], the single-stage flow clients look for.
    with_email = [
        tuple(EMAIL_IDENTITY if stage == DUMMY else stage for stage in flow)
        if DUMMY in flow else (*flow, EMAIL_IDENTITY)
        for flow in flows
    ]
    return with_email if email == "required" else flows + with_email


def _flows_without_email(config: Config) -> list[Flow]:
    if config.registration.mode == "token":
        # The token stage then a dummy stage, as Synapse offers: clients written against Synapse
        # (matrix-nio's register_with_token, Element) expect a 401 after the token stage and
        # finish with m.login.dummy; the spec allows either flow.
        return [(REGISTRATION_TOKEN, DUMMY)]
    if captcha_site_key(config):
        # The captcha then a dummy stage, the shape Synapse offers and its clients expect.
        captcha = (RECAPTCHA, DUMMY)
        return [captcha] if config.registration.recaptcha_required else [(DUMMY,), captcha]
    return [(DUMMY,)]


def registration_params(config: Config) -> dict[str, Any]:
    """The UIA `params`: the site key a client's captcha widget needs."""
    site_key = captcha_site_key(config)
    return {RECAPTCHA: {"public_key": site_key}} if site_key else {}


def captcha_site_key(config: Config) -> str:
    """The reCAPTCHA site key when registration asks for a captcha, else ""."""
    return config.registration.recaptcha_public_key if config.registration.mode == "open" else ""


def _user_id_for(username: object, server_name: str) -> str:
    if not isinstance(username, str):
        raise MatrixError(Errcode.INVALID_USERNAME, "username must be a string")
    # Clients commonly send what the user typed; user ids are lower-case (spec grammar).
    user_id = make_user_id(username.lower(), server_name)
    validate_user_id(user_id)
    return user_id


async def check_username_available(storage: Storage, server_name: str, username: object) -> str:
    """The user id `username` would get; 400 M_INVALID_USERNAME or M_USER_IN_USE otherwise."""
    user_id = _user_id_for(username, server_name)
    if await get_account(storage, user_id) is not None:
        raise MatrixError(Errcode.USER_IN_USE, "User ID already taken.")
    return user_id


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise MatrixError(Errcode.INVALID_PARAM, f"'{key}' must be a {kind.__name__}")
    return value


def _password(body: dict[str, Any]) -> str | None:
    password: str | None = _optional(body, "password", str)
    if password is not None and len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(
            Errcode.INVALID_PARAM, f"password may be at most {MAX_PASSWORD_LENGTH} characters"
        )
    return password


async def register_user(
    storage: Storage,
    uia: UiaSessions,
    config: Config,
    body: dict[str, Any],
    *,
    ip: str | None = None,
    ratelimiter: RateLimiter | None = None,
) -> Registered:
    """POST /register?kind=user. Username problems are reported before UIA (spec)."""
    if config.registration.mode not in ("open", "token"):
        raise MatrixError(Errcode.FORBIDDEN, "Registration is disabled")
    server_name = config.server.server_name
    auth = body.get("auth")
    session, params = uia.start(
        auth, "register", registration_flows(config), body, registration_params(config)
    )
    if session.registered_user_id is not None:
        return await _register_again(storage, session.registered_user_id, params, ip)
    guest_id = await _upgradable_guest(storage, server_name, params)
    user_id = guest_id
    if params.get("username") is not None and guest_id is None:
        user_id = await check_username_available(storage, server_name, params["username"])
    password = _password(params)
    device_id = _optional(params, "device_id", str)
    if device_id is not None:
        validate_device_id(device_id)
    display_name = _optional(params, "initial_device_display_name", str)
    inhibit_login = bool(_optional(params, "inhibit_login", bool))
    with_refresh = bool(_optional(params, "refresh_token", bool))

    await uia.complete(session, auth, storage=storage, server_name=server_name, ip=ip)

    if password is None:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing params: password")
    if ratelimiter is not None and ip is not None:
        ratelimiter.check(ip)
    password_hash = await hash_password_async(password)
    token = session.registration_token
    threepid = session.threepid
    now = now_ms()

    async def txn(conn: aiosqlite.Connection) -> Registered:
        uid = user_id or await _free_generated_user_id(conn, server_name)
        if guest_id is not None:
            created = await accounts_table.update_guest_to_user(conn, uid, password_hash)
        else:
            created = await accounts_table.insert_account(
                conn, user_id=uid, password_hash=password_hash, created_ts=now,
                displayname=default_displayname(uid),
            )
        if not created:
            raise MatrixError(Errcode.USER_IN_USE, "User ID already taken.")
        if token is not None and not await registration_table.use_registration_token(
            conn, token, now
        ):
            raise MatrixError(Errcode.UNAUTHORIZED, "Registration token is no longer valid")
        if threepid is not None:  # m.login.email.identity: the address becomes the account's
            await add_validated_threepid(conn, uid, threepid, now)
        if inhibit_login:
            return Registered(uid, None)
        new = await insert_session(
            conn, uid, device_id=device_id, display_name=display_name, ip=ip,
            with_refresh=with_refresh, now=now,
        )
        return Registered(uid, new)

    result = await storage.db.write(txn)
    # Kept (until it expires) so that a retry of this registration gets the same user; its
    # operation stays "register", so it authorises nothing else.
    session.registered_user_id = result.user_id
    return result


async def _register_again(
    storage: Storage, user_id: str, params: dict[str, Any], ip: str | None
) -> Registered:
    """A repeat of a registration that went through: the same user, logged in anew."""
    device_id = _optional(params, "device_id", str)
    if device_id is not None:
        validate_device_id(device_id)
    if _optional(params, "inhibit_login", bool):
        return Registered(user_id, None)
    display_name = _optional(params, "initial_device_display_name", str)
    with_refresh = bool(_optional(params, "refresh_token", bool))
    new = await storage.db.write(lambda conn: insert_session(
        conn, user_id, device_id=device_id, display_name=display_name, ip=ip,
        with_refresh=with_refresh, now=now_ms(),
    ))
    return Registered(user_id, new)


async def _upgradable_guest(
    storage: Storage, server_name: str, params: dict[str, Any]
) -> str | None:
    """The guest account a registration with `guest_access_token` upgrades (guest_access.md:
    the `username` must then be the guest's own localpart), or None without the token."""
    token = params.get("guest_access_token")
    if token is None:
        return None
    if not isinstance(token, str):
        raise MatrixError(Errcode.INVALID_PARAM, "guest_access_token must be a string")
    guest = await authenticate(storage, token)
    if not guest.is_guest:
        raise MatrixError(Errcode.FORBIDDEN, "guest_access_token is not a guest's")
    if _user_id_for(params.get("username"), server_name) != guest.user_id:
        raise MatrixError(Errcode.FORBIDDEN, "A guest can only upgrade its own account")
    return guest.user_id


async def _free_generated_user_id(conn: aiosqlite.Connection, server_name: str) -> str:
    # Spec: with no username the server MUST pick the localpart. Random digits, not a counter,
    # so the ids do not reveal how many accounts exist.
    while True:
        localpart = str(secrets.randbelow(10**_GENERATED_LOCALPART_DIGITS)).zfill(
            _GENERATED_LOCALPART_DIGITS
        )
        user_id = make_user_id(localpart, server_name)
        if await accounts_table.select_account(conn, user_id) is None:
            return user_id


async def register_guest(
    storage: Storage,
    config: Config,
    body: dict[str, Any],
    *,
    ip: str | None = None,
    ratelimiter: RateLimiter | None = None,
) -> Registered:
    """POST /register?kind=guest: no UIA; every parameter but the display name is ignored."""
    if not config.registration.allow_guests:
        raise MatrixError(Errcode.GUEST_ACCESS_FORBIDDEN, "Guest access is disabled")
    if ratelimiter is not None and ip is not None:
        ratelimiter.check(ip)
    display_name = _optional(body, "initial_device_display_name", str)
    now = now_ms()

    async def txn(conn: aiosqlite.Connection) -> Registered:
        uid = await _free_generated_user_id(conn, config.server.server_name)
        await accounts_table.insert_account(
            conn, user_id=uid, password_hash=None, created_ts=now, is_guest=True,
            displayname=default_displayname(uid),
        )
        new = await insert_session(
            conn, uid, device_id=None, display_name=display_name, ip=ip, with_refresh=False,
            now=now,
        )
        return Registered(uid, new)

    return await storage.db.write(txn)


# -- shared-secret registration (Synapse's /_synapse/admin/v1/register) ----------------------


class SharedSecretNonces:
    """Single-use nonces, valid for NONCE_TTL_S, at most MAX_NONCES outstanding."""

    NONCE_TTL_S = 60.0
    MAX_NONCES = 1000

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()

    def new(self) -> str:
        self._expire()
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = self._clock()
        while len(self._nonces) > self.MAX_NONCES:
            self._nonces.popitem(last=False)
        return nonce

    def take(self, nonce: object) -> bool:
        """True once for a nonce handed out within the TTL; it is gone afterwards either way."""
        self._expire()
        return isinstance(nonce, str) and self._nonces.pop(nonce, None) is not None

    def _expire(self) -> None:
        now = self._clock()
        while self._nonces and now - next(iter(self._nonces.values())) > self.NONCE_TTL_S:
            self._nonces.popitem(last=False)


def shared_secret_mac(
    secret: str, nonce: str, username: str, password: str, admin: bool, user_type: str | None
) -> str:
    """HMAC-SHA1 over NUL-separated nonce, username, password, admin|notadmin[, user_type], as
    Synapse's admin API documents it (so register_new_matrix_user and other tools work)."""
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    if user_type:
        parts.append(user_type)
    message = b"\x00".join(p.encode("utf-8") for p in parts)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha1).hexdigest()


def _required_string(body: dict[str, Any], key: str) -> str:
    if key not in body:
        raise MatrixError(Errcode.BAD_JSON, f"{key} must be specified")
    value = body[key]
    if not isinstance(value, str) or len(value) > MAX_PASSWORD_LENGTH or "\x00" in value:
        raise MatrixError(Errcode.UNKNOWN, f"Invalid {key}", status=400)
    return value


async def register_with_shared_secret(
    storage: Storage, config: Config, nonces: SharedSecretNonces, body: dict[str, Any]
) -> Session:
    """POST /_synapse/admin/v1/register."""
    secret = config.registration.shared_secret
    if not secret:
        raise MatrixError(
            Errcode.UNKNOWN, "Shared secret registration is not enabled", status=400
        )
    if "nonce" not in body:
        raise MatrixError(Errcode.BAD_JSON, "nonce must be specified")
    nonce = body["nonce"]
    if not nonces.take(nonce):
        raise MatrixError(Errcode.UNKNOWN, "unrecognised nonce", status=400)
    username = _required_string(body, "username")
    password = _required_string(body, "password")
    admin = bool(body.get("admin", False))
    user_type = body.get("user_type")
    if user_type is not None and not isinstance(user_type, str):
        raise MatrixError(Errcode.UNKNOWN, "Invalid user type", status=400)
    displayname = _optional(body, "displayname", str)
    got_mac = body.get("mac")
    if not isinstance(got_mac, str):
        raise MatrixError(Errcode.BAD_JSON, "mac must be specified")
    want_mac = shared_secret_mac(secret, nonce, username, password, admin, user_type)
    if not hmac.compare_digest(want_mac.encode("ascii"), got_mac.encode("utf-8")):
        raise MatrixError(Errcode.FORBIDDEN, "HMAC incorrect")
    user_id = _user_id_for(username, config.server.server_name)
    password_hash = await hash_password_async(password)
    now = now_ms()

    async def txn(conn: aiosqlite.Connection) -> Session:
        if not await accounts_table.insert_account(
            conn, user_id=user_id, password_hash=password_hash, created_ts=now,
            is_admin=admin, displayname=displayname or default_displayname(user_id),
        ):
            raise MatrixError(Errcode.USER_IN_USE, "User ID already taken.")
        return await insert_session(
            conn, user_id, device_id=None, display_name=None, ip=None, with_refresh=False, now=now
        )

    return await storage.db.write(txn)
