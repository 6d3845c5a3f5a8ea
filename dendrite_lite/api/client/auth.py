"""Request authentication for every client-server endpoint (spec: §Using access tokens).

    requester = await authenticate(services())           # 401 unless a valid token is sent
    requester = await authenticate(services(), allow_guest=True)

The token is taken from `Authorization: Bearer <token>` only: the `?access_token=` query
parameter is no longer supported (spec v1.20, MSC4127), so a token sent that way counts as
missing. `client_ip()` is the address rate limits and the devices list use.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from quart import request

from dendrite_lite.api.app import Services, services
from dendrite_lite.appservice.accounts import appservice_requester
from dendrite_lite.appservice.registration import Registration
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import sessions
from dendrite_lite.users.sessions import Requester
from dendrite_lite.users.uia import PASSWORD, UiaSession

__all__ = [
    "Requester",
    "access_token",
    "appservice_send_args",
    "appservice_token",
    "authenticate",
    "authenticate_with_password",
    "client_ip",
]

_MAX_USER_AGENT = 512
# origin_server_ts is a canonical JSON integer: at most 2**53 - 1.
_MAX_TS = 2**53 - 1


def access_token() -> str | None:
    """The bearer token of the current request, or None when none was sent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MatrixError(Errcode.MISSING_TOKEN, "Invalid Authorization header")
    return token.strip()


def client_ip() -> str | None:
    """The client's address. Behind the reverse proxy of tls.mode = "proxy" every connection
    comes from the proxy, so when it comes from a loopback address the proxy's
    X-Forwarded-For (its last entry, the one the proxy itself appended) is used instead."""
    remote = request.remote_addr
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and remote and _is_loopback(remote):
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return remote


def _user_agent() -> str | None:
    # Kept per device for /admin/whois; a client's own string, so its size is bounded here.
    agent = request.headers.get("User-Agent")
    return agent[:_MAX_USER_AGENT] if agent else None


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


async def authenticate(svc: Services, *, allow_guest: bool = False) -> Requester:
    """The requester of the current request.

    401 M_MISSING_TOKEN without a token, 401 M_UNKNOWN_TOKEN (with soft_logout) for a bad one,
    403 M_GUEST_ACCESS_FORBIDDEN for a guest unless allow_guest.
    """
    token = access_token()
    if token is None:
        raise MatrixError(Errcode.MISSING_TOKEN, "Missing access token")
    reg = svc.appservices.by_as_token(token) if svc.appservices else None
    if reg is not None:
        # Identity assertion (application-service-api): ?user_id= and ?device_id= (MSC4190's
        # unstable name too) say whom the AS acts as.
        device_id = request.args.get("device_id") or request.args.get(
            "org.matrix.msc3202.device_id"
        )
        return await appservice_requester(
            svc.storage, svc.appservices, reg, request.args.get("user_id"), device_id
        )
    requester = await sessions.authenticate(
        svc.storage, token, ip=client_ip(), user_agent=_user_agent()
    )
    if requester.is_guest and not allow_guest:
        raise MatrixError(Errcode.GUEST_ACCESS_FORBIDDEN, "Guest access not allowed")
    return requester


def appservice_token(svc: Services) -> Registration:
    """The application service whose as_token the request carries, for m.login.application_service
    (401 M_MISSING_TOKEN without a token, M_UNKNOWN_TOKEN for another one)."""
    token = access_token()
    if token is None:
        raise MatrixError(Errcode.MISSING_TOKEN, "m.login.application_service needs an as_token")
    reg = svc.appservices.by_as_token(token) if svc.appservices else None
    if reg is None:
        raise MatrixError(Errcode.UNKNOWN_TOKEN, "Unrecognised application service token")
    return reg


def appservice_send_args(requester: Requester) -> dict[str, Any]:
    """For /send and /state: an application service's `ts` (timestamp massaging, 400
    M_INVALID_PARAM unless a valid origin_server_ts) and whether its sends are rate limited
    (the registration's rate_limited). Nothing for a user's request: `ts` is the AS's only."""
    if requester.app_service is None:
        return {}
    reg = services().appservices.by_id(requester.app_service)
    raw = request.args.get("ts")
    ts = None
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or int(raw) > _MAX_TS:
            raise MatrixError(Errcode.INVALID_PARAM, "ts must be a timestamp in milliseconds")
        ts = int(raw)
    return {"ts": ts, "rate_limited": reg.rate_limited if reg is not None else True}


async def authenticate_with_password(
    svc: Services, body: dict[str, Any], operation: str
) -> tuple[Requester, UiaSession, dict[str, Any]]:
    """For sensitive requests (password change, deactivation, device deletion): the requester,
    after UIA has also proven they know the account's password, or (with [cas] or OpenID Connect configured)
    signed in again through single sign-on as the same user (401 until then). Returns the
    UIA session, to `svc.uia.finish()` once the operation succeeded, and the request's
    parameters merged with those sent earlier in the session."""
    requester = await authenticate(svc)
    if requester.app_service is not None:
        # An AS manages the users of its namespace, which have no passwords (application
        # service API: "server admin style permissions"), as Synapse skips UIA for it.
        return requester, UiaSession("", operation, (), {}, 0.0), dict(body)
    auth = body.get("auth")
    if isinstance(auth, dict) and auth.get("type") == PASSWORD:
        # A stolen access token must not become a password-guessing oracle: UIA password
        # attempts share the account's login bucket.
        svc.ratelimits.login_user.check(requester.user_id.lower())
    session, params = await svc.uia.verify_password_of(
        svc.storage, body, server_name=svc.config.server.server_name,
        user_id=requester.user_id, operation=operation, sso=svc.sso_enabled,
    )
    return requester, session, params
