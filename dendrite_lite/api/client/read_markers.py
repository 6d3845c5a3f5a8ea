"""Client-server API: read markers (read_markers.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_read_markers", __name__)


@bp.post("/_matrix/client/v3/rooms/<room_id>/read_markers")
async def post_read_markers(room_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    await svc.read_markers.set_markers(requester.user_id, room_id, body)
    await svc.presence.bump_active(requester.user_id)
    return jsonify({})
