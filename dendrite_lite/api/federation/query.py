"""Federation API: queries (data/api/server-server/query.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.federation.queries import query_directory, query_profile

__all__ = ["bp"]

bp = Blueprint("federation_query", __name__)


@bp.get("/_matrix/federation/v1/query/profile")
async def get_profile() -> Response:
    """GET /_matrix/federation/v1/query/profile"""
    await authenticated_origin()
    svc = services()
    answer = await query_profile(
        svc.storage, svc.config.server.server_name,
        request.args.get("user_id"), request.args.get("field"),
    )
    return jsonify(answer)


@bp.get("/_matrix/federation/v1/query/directory")
async def get_directory() -> Response:
    """GET /_matrix/federation/v1/query/directory"""
    await authenticated_origin()
    svc = services()
    answer = await query_directory(svc.storage, svc.config.server.server_name, request.args.get("room_alias"))
    return jsonify(answer)
