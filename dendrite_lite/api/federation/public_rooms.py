"""Federation API: our published room directory for other servers (public_rooms.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.directory import PublicRoomsQuery, query_from_body

__all__ = ["bp"]

bp = Blueprint("federation_public_rooms", __name__)

_PATH = "/_matrix/federation/v1/publicRooms"


@bp.get(_PATH)
async def get_public_rooms() -> Response:
    """GET /_matrix/federation/v1/publicRooms"""
    await authenticated_origin()
    limit = request.args.get("limit")
    if limit is not None and not limit.lstrip("-").isdigit():
        raise MatrixError(Errcode.INVALID_PARAM, "limit must be an integer")
    query = PublicRoomsQuery(
        limit=int(limit) if limit is not None else None, since=request.args.get("since")
    )
    return jsonify(await services().public_rooms.list(None, query))


@bp.post(_PATH)
async def post_public_rooms() -> Response:
    """POST /_matrix/federation/v1/publicRooms"""
    await authenticated_origin()
    query = query_from_body(await json_body(allow_empty=True))
    return jsonify(await services().public_rooms.list(None, query))
