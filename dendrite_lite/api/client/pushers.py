"""Client-server API: pushers (pusher.yaml) and the notification list (notifications.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_pushers", __name__)


@bp.get("/_matrix/client/v3/pushers")
async def get_pushers() -> Response:
    """GET /_matrix/client/v3/pushers"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.pushers.pushers(requester.user_id))


@bp.post("/_matrix/client/v3/pushers/set")
async def set_pusher() -> Response:
    """POST /_matrix/client/v3/pushers/set"""
    svc = services()
    requester = await authenticate(svc)
    await svc.pushers.set_pusher(requester.user_id, requester.device_id, await json_body())
    return jsonify({})


@bp.get("/_matrix/client/v3/notifications")
async def get_notifications() -> Response:
    """GET /_matrix/client/v3/notifications"""
    svc = services()
    requester = await authenticate(svc)
    limit = int_arg("limit") if "limit" in request.args else None
    return jsonify(await svc.notification_list.notifications(
        requester.user_id, requester.device_id, from_token=request.args.get("from"),
        limit=limit, only=request.args.get("only"),
    ))
