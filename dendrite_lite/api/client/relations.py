"""Client-server API: event relationships and threads (relations.yaml, threads_list.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import bool_arg, int_arg
from dendrite_lite.rooms.relations import (
    DEFAULT_LIMIT,
    RelationsRequest,
    RelationsService,
    ThreadsRequest,
)

__all__ = ["bp"]

bp = Blueprint("client_relations", __name__)

_ROOM = "/_matrix/client/v1/rooms/<room_id>"


@bp.get(f"{_ROOM}/relations/<event_id>")
@bp.get(f"{_ROOM}/relations/<event_id>/<rel_type>")
@bp.get(f"{_ROOM}/relations/<event_id>/<rel_type>/<event_type>")
async def get_relations(
    room_id: str, event_id: str, rel_type: str | None = None, event_type: str | None = None
) -> Response:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]"""
    svc = services()
    requester = await authenticate(svc)
    args = request.args
    body = await RelationsService(svc.storage).relations(
        RelationsRequest(
            user_id=requester.user_id,
            device_id=requester.device_id,
            room_id=room_id,
            event_id=event_id,
            rel_type=rel_type,
            event_type=event_type,
            from_token=args.get("from"),
            to_token=args.get("to"),
            limit=int_arg("limit", DEFAULT_LIMIT),
            dir=args.get("dir", "b"),
            recurse=bool_arg("recurse", "org.matrix.msc3981.recurse"),
        )
    )
    return jsonify(body)


@bp.get(f"{_ROOM}/threads")
async def get_threads(room_id: str) -> Response:
    """GET /_matrix/client/v1/rooms/{roomId}/threads"""
    svc = services()
    requester = await authenticate(svc)
    body = await RelationsService(svc.storage).threads(
        ThreadsRequest(
            user_id=requester.user_id,
            device_id=requester.device_id,
            room_id=room_id,
            include=request.args.get("include", "all"),
            limit=int_arg("limit", DEFAULT_LIMIT),
            from_token=request.args.get("from"),
        )
    )
    return jsonify(body)
