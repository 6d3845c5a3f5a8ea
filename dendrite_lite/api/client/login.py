"""Client-server API: login, refresh, logout (data/api/client-server/login.yaml, refresh.yaml,
logout.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client import sso
from dendrite_lite.api.client.auth import appservice_token, authenticate, client_ip
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.wellknown.matrix import client_base_url
from dendrite_lite.appservice.accounts import APPSERVICE_LOGIN, login_as_appservice
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import sessions
from dendrite_lite.users.login_tokens import TOKEN_LOGIN
from dendrite_lite.users.sessions import login_rate_key

__all__ = ["bp", "LOGIN_FLOWS"]

bp = Blueprint("client_login", __name__)

LOGIN_FLOWS = [{"type": "m.login.password"}]


@bp.get("/_matrix/client/v3/login")
async def get_login() -> Response:
    """GET /_matrix/client/v3/login"""
    # Not rate limited: clients fetch it at every start, and it reveals nothing.
    svc = services()
    flows = list(LOGIN_FLOWS)
    if svc.appservices:
        flows.append({"type": APPSERVICE_LOGIN})
    if svc.sso_enabled:
        flows.append({"type": "m.login.sso", "identity_providers": sso.identity_providers(svc)})
    if svc.cas is not None:
        # The deprecated name of the same flow (its redirect is /login/cas/redirect), which
        # older clients and SyTest's CAS tests look for.
        flows.append({"type": "m.login.cas"})
    if svc.config.login.get_token:
        flows.append({"type": TOKEN_LOGIN, "get_login_token": True})
    elif svc.sso_enabled:  # single sign-on ends in a login token
        flows.append({"type": TOKEN_LOGIN})
    return jsonify({"flows": flows})


@bp.post("/_matrix/client/v3/login")
async def post_login() -> Response:
    """POST /_matrix/client/v3/login"""
    svc = services()
    body = await json_body()
    login_type = body.get("type")
    if login_type != APPSERVICE_LOGIN:
        svc.ratelimits.login_ip.check(client_ip() or "")
    if login_type == APPSERVICE_LOGIN:
        session = await _appservice_login(body)
    elif login_type == TOKEN_LOGIN and (svc.config.login.get_token or svc.sso_enabled):
        session = await svc.login_tokens.login(svc.storage, body, ip=client_ip())
    elif login_type == "m.login.password":
        server_name = svc.config.server.server_name
        svc.ratelimits.login_user.check(login_rate_key(body, server_name))
        session = await sessions.login_with_password(
            svc.storage, server_name, body, ip=client_ip()
        )
    else:
        raise MatrixError(Errcode.UNKNOWN, "Bad login type.", status=400)
    await svc.device_lists.changed(session.user_id)  # a new device is a device list change
    result = session.to_json()
    result["well_known"] = {"m.homeserver": {"base_url": client_base_url(svc.config)}}
    return jsonify(result)


async def _appservice_login(body: dict) -> sessions.Session:
    """m.login.application_service: the AS's token in the Authorization header, not rate
    limited (a bridge logs in its puppets in bursts)."""
    svc = services()
    reg = appservice_token(svc)
    return await login_as_appservice(svc.storage, svc.appservices, reg, body, ip=client_ip())


@bp.post("/_matrix/client/v3/refresh")
async def post_refresh() -> Response:
    """POST /_matrix/client/v3/refresh"""
    body = await json_body()
    token = body.get("refresh_token")
    if not isinstance(token, str):
        raise MatrixError(Errcode.MISSING_PARAM, "Missing refresh_token")
    session = await sessions.refresh_session(services().storage, token)
    result = session.to_json()
    return jsonify({k: result[k] for k in ("access_token", "refresh_token", "expires_in_ms")})


@bp.post("/_matrix/client/v3/logout")
async def post_logout() -> Response:
    """POST /_matrix/client/v3/logout"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    await sessions.logout(svc.storage, requester)
    await svc.device_lists.changed(requester.user_id)
    return jsonify({})


@bp.post("/_matrix/client/v3/logout/all")
async def post_logout_all() -> Response:
    """POST /_matrix/client/v3/logout/all"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    await sessions.logout_all(svc.storage, requester.user_id)
    await svc.device_lists.changed(requester.user_id)
    return jsonify({})
