"""Client-server API: room history (message_pagination.yaml, event_context.yaml,
room_event_by_timestamp.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.history import DEFAULT_LIMIT, MessagesRequest
from dendrite_lite.sync.filters import parse_room_event_filter_param

__all__ = ["bp"]

bp = Blueprint("client_messages", __name__)


@bp.get("/_matrix/client/v3/rooms/<room_id>/messages")
async def get_messages(room_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/messages"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    args = request.args
    # The spec marks `dir` required. Synapse defaults it to "f", but no client we
    # know omits it (Element, matrix-nio and SyTest always send it), so we follow the spec.
    if "dir" not in args:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing dir parameter ('b' or 'f')")
    body = await svc.history.messages(
        MessagesRequest(
            user_id=requester.user_id,
            device_id=requester.device_id,
            room_id=room_id,
            dir=args["dir"],
            from_token=args.get("from"),
            to_token=args.get("to"),
            limit=int_arg("limit", DEFAULT_LIMIT),
            filter=parse_room_event_filter_param(args.get("filter")),
        )
    )
    return jsonify(body)


@bp.get("/_matrix/client/v3/rooms/<room_id>/context/<event_id>")
async def get_context(room_id: str, event_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    body = await svc.history.context(
        requester.user_id,
        requester.device_id,
        room_id,
        event_id,
        limit=int_arg("limit", DEFAULT_LIMIT),
        room_filter=parse_room_event_filter_param(request.args.get("filter")),
    )
    return jsonify(body)


@bp.get("/_matrix/client/v1/rooms/<room_id>/timestamp_to_event")
async def get_timestamp_to_event(room_id: str) -> Response:
    """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event"""
    svc = services()
    requester = await authenticate(svc)
    direction = request.args.get("dir")
    if direction is None:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing dir parameter")
    body = await svc.history.timestamp_to_event(
        requester.user_id, room_id, int_arg("ts"), direction
    )
    return jsonify(body)
