"""Federation API: how heavy one of our rooms is to join (Synapse's unstable room complexity,
federation/room_complexity.py)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("federation_room_complexity", __name__)


@bp.get("/_matrix/federation/unstable/rooms/<room_id>/complexity")
async def get_room_complexity(room_id: str) -> Response:
    """GET /_matrix/federation/unstable/rooms/{roomId}/complexity"""
    origin = await authenticated_origin()
    fm = services().federated_membership
    if fm is None or fm.complexity is None:
        raise MatrixError(Errcode.NOT_FOUND, "Federation is disabled on this server")
    return jsonify(await fm.complexity.answer(origin, room_id))
