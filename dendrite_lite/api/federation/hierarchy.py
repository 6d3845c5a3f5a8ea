"""Federation API: a space's hierarchy for other servers (space_hierarchy.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.federation.auth import authenticated_origin

__all__ = ["bp"]

bp = Blueprint("federation_hierarchy", __name__)


@bp.get("/_matrix/federation/v1/hierarchy/<room_id>")
async def get_hierarchy(room_id: str) -> Response:
    """GET /_matrix/federation/v1/hierarchy/{roomId}"""
    origin = await authenticated_origin()
    suggested_only = request.args.get("suggested_only") == "true"
    return jsonify(await services().hierarchy.for_server(origin, room_id, suggested_only))
