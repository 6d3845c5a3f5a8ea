"""Client-server API: presence (presence.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_presence", __name__)

_STATUS = "/_matrix/client/v3/presence/<user_id>/status"


@bp.get(_STATUS)
async def get_status(user_id: str) -> Response:
    """GET /_matrix/client/v3/presence/{userId}/status"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.presence.get_presence(requester.user_id, user_id))


@bp.put(_STATUS)
async def put_status(user_id: str) -> Response:
    """PUT /_matrix/client/v3/presence/{userId}/status"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    if "presence" not in body:
        raise MatrixError(Errcode.MISSING_PARAM, "'presence' is required")
    await svc.presence.set_presence(
        requester.user_id, user_id, body["presence"], body.get("status_msg")
    )
    return jsonify({})
