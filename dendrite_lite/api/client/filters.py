"""Client-server API: POST/GET /user/{userId}/filter (filter.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_filters", __name__)

_FILTER = "/_matrix/client/v3/user/<user_id>/filter"


@bp.post(_FILTER)
async def post_filter(user_id: str) -> Response:
    """POST /_matrix/client/v3/user/{userId}/filter"""
    svc = services()
    requester = await authenticate(svc)
    filter_id = await svc.filters.create(requester.user_id, user_id, await json_body())
    return jsonify({"filter_id": filter_id})


@bp.get(f"{_FILTER}/<filter_id>")
async def get_filter(user_id: str, filter_id: str) -> Response:
    """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.filters.get(requester.user_id, user_id, filter_id))
