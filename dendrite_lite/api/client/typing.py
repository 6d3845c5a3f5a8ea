"""Client-server API: typing notifications (typing.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_typing", __name__)


@bp.put("/_matrix/client/v3/rooms/<room_id>/typing/<user_id>")
async def put_typing(room_id: str, user_id: str) -> Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    if "typing" not in body:
        raise MatrixError(Errcode.MISSING_PARAM, "'typing' is required")
    typing = body["typing"]
    if requester.shadow_banned:
        return jsonify({})  # nobody sees a shadow-banned user type (rooms/shadow_ban.py)
    await svc.typing.set_typing(requester.user_id, user_id, room_id, typing, body.get("timeout"))
    if typing is True:
        await svc.presence.bump_active(requester.user_id)
    return jsonify({})
