"""Client-server API: POST /login/get_token (login_token.yaml), when login.get_token is on."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate, authenticate_with_password
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_login_token", __name__)


@bp.post("/_matrix/client/v1/login/get_token")
async def get_token() -> Response:
    """POST /_matrix/client/v1/login/get_token"""
    svc = services()
    if not svc.config.login.get_token:
        await authenticate(svc)  # the capability is per user: an unknown caller learns nothing
        raise MatrixError(Errcode.UNRECOGNIZED, "Login tokens are turned off", status=404)
    body = await json_body(allow_empty=True)
    # A fresh UIA session every time (finished below): the spec says to always re-prompt.
    requester, session, _ = await authenticate_with_password(svc, body, "get login token")
    svc.uia.finish(session)
    return jsonify(svc.login_tokens.issue(requester.user_id))
