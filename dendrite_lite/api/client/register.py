"""Client-server API: account registration (data/api/client-server/registration.yaml,
registration_tokens.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import appservice_token, client_ip
from dendrite_lite.api.client.query_args import str_arg
from dendrite_lite.api.errors import json_body
from dendrite_lite.appservice import accounts as appservice_accounts
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import registration
from dendrite_lite.users.registration_tokens import is_token_valid
from dendrite_lite.users.sessions import now_ms

__all__ = ["bp"]

bp = Blueprint("client_register", __name__)


@bp.post("/_matrix/client/v3/register")
async def post_register() -> Response:
    """POST /_matrix/client/v3/register"""
    svc = services()
    body = await json_body()
    kind = request.args.get("kind", "user")
    storage = svc.storage
    limiter = svc.ratelimits.register_ip
    if body.get("type") == appservice_accounts.APPSERVICE_LOGIN:
        return await _register_appservice_user(body)
    if svc.appservices and isinstance(body.get("username"), str):
        appservice_accounts.refuse_exclusive_username(svc.appservices, body["username"])
    if kind == "guest":
        result = await registration.register_guest(
            storage, svc.config, body, ip=client_ip(), ratelimiter=limiter
        )
    elif kind == "user":
        result = await registration.register_user(
            storage, svc.uia, svc.config, body, ip=client_ip(), ratelimiter=limiter
        )
    else:
        raise MatrixError(Errcode.INVALID_PARAM, "kind must be 'user' or 'guest'")
    return jsonify(result.to_json())


async def _register_appservice_user(body: dict) -> Response:
    """POST /register with type m.login.application_service: the AS's token is required."""
    svc = services()
    reg = appservice_token(svc)
    user_id, session = await appservice_accounts.register_as_appservice(
        svc.storage, svc.appservices, reg, body, ip=client_ip()
    )
    if session is None:
        return jsonify({"user_id": user_id})
    await svc.device_lists.changed(user_id)
    return jsonify(session.to_json())


@bp.get("/_matrix/client/v3/register/available")
async def get_register_available() -> Response:
    """GET /_matrix/client/v3/register/available"""
    svc = services()
    if svc.config.registration.mode == "closed":
        raise MatrixError(Errcode.FORBIDDEN, "Registration is disabled")
    username = request.args.get("username")
    if svc.appservices and username is not None:
        appservice_accounts.refuse_exclusive_username(svc.appservices, username)
    await registration.check_username_available(
        svc.storage, svc.config.server.server_name, str_arg("username")
    )
    return jsonify({"available": True})


@bp.get("/_matrix/client/v1/register/m.login.registration_token/validity")
async def get_registration_token_validity() -> Response:
    """GET /_matrix/client/v1/register/m.login.registration_token/validity"""
    svc = services()
    if svc.config.registration.mode != "token":
        raise MatrixError(Errcode.FORBIDDEN, "Registration tokens are not enabled")
    # Rate limited like registration itself: otherwise it is an oracle for guessing tokens.
    svc.ratelimits.register_ip.check(client_ip() or "")
    token = request.args.get("token")
    if token is None:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing token")
    valid = await is_token_valid(svc.storage, token, now=now_ms())
    return jsonify({"valid": valid})
