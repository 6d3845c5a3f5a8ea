"""Client-server API: reporting content (report_content.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_reports", __name__)


@bp.post("/_matrix/client/v3/rooms/<room_id>/report/<event_id>")
async def report_event(room_id: str, event_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}"""
    svc = services()
    requester = await authenticate(svc)
    await svc.reports.report_event(requester.user_id, room_id, event_id, await json_body())
    return jsonify({})


@bp.post("/_matrix/client/v3/rooms/<room_id>/report")
async def report_room(room_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/report"""
    svc = services()
    requester = await authenticate(svc)
    await svc.reports.report_room(requester.user_id, room_id, await json_body())
    return jsonify({})


@bp.post("/_matrix/client/v3/users/<user_id>/report")
async def report_user(user_id: str) -> Response:
    """POST /_matrix/client/v3/users/{userId}/report"""
    svc = services()
    requester = await authenticate(svc)
    await svc.reports.report_user(requester.user_id, user_id, await json_body())
    return jsonify({})
