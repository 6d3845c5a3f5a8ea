"""Client-server API: the space hierarchy (space_hierarchy.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import bool_arg, int_arg
from dendrite_lite.rooms.hierarchy import HierarchyQuery

__all__ = ["bp"]

bp = Blueprint("client_hierarchy", __name__)


@bp.get("/_matrix/client/v1/rooms/<room_id>/hierarchy")
async def get_hierarchy(room_id: str) -> Response:
    """GET /_matrix/client/v1/rooms/{roomId}/hierarchy"""
    svc = services()
    requester = await authenticate(svc)
    query = HierarchyQuery(
        room_id,
        suggested_only=bool_arg("suggested_only"),
        limit=int_arg("limit") if "limit" in request.args else None,
        max_depth=int_arg("max_depth") if "max_depth" in request.args else None,
        from_token=request.args.get("from"),
    )
    return jsonify(await svc.hierarchy.hierarchy(requester.user_id, query))
