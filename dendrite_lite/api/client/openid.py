"""Client-server API: OpenID tokens (openid.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_openid", __name__)


@bp.post("/_matrix/client/v3/user/<user_id>/openid/request_token")
async def request_token(user_id: str) -> Response:
    """POST /_matrix/client/v3/user/{userId}/openid/request_token"""
    svc = services()
    requester = await authenticate(svc)
    await json_body()  # an empty object; anything else is the usual M_NOT_JSON/M_BAD_JSON
    return jsonify(await svc.openid.request_token(requester.user_id, user_id))
