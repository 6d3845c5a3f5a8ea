"""Client-server API: the user directory (users.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_user_directory", __name__)


@bp.post("/_matrix/client/v3/user_directory/search")
async def search() -> Response:
    """POST /_matrix/client/v3/user_directory/search"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.user_directory.search(requester.user_id, await json_body()))
