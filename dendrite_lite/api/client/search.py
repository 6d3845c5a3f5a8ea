"""Client-server API: server-side search (search.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.rooms.search import SearchService

__all__ = ["bp"]

bp = Blueprint("client_search", __name__)


@bp.post("/_matrix/client/v3/search")
async def post_search() -> Response:
    """POST /_matrix/client/v3/search"""
    svc = services()
    requester = await authenticate(svc)
    body = await SearchService(svc.storage).search(
        requester.user_id, requester.device_id, await json_body(), request.args.get("next_batch")
    )
    return jsonify(body)
