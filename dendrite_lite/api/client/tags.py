"""Client-server API: room tagging (tags.yaml), stored as m.tag room account data."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_tags", __name__)

_TAGS = "/_matrix/client/v3/user/<user_id>/rooms/<room_id>/tags"


@bp.get(_TAGS)
async def get_tags(user_id: str, room_id: str) -> Response:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.account_data.tags(requester.user_id, user_id, room_id))


@bp.put(f"{_TAGS}/<tag>")
async def put_tag(user_id: str, room_id: str, tag: str) -> Response:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    await svc.account_data.add_tag(requester.user_id, user_id, room_id, tag, body)
    return jsonify({})


@bp.delete(f"{_TAGS}/<tag>")
async def delete_tag(user_id: str, room_id: str, tag: str) -> Response:
    """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    svc = services()
    requester = await authenticate(svc)
    await svc.account_data.remove_tag(requester.user_id, user_id, room_id, tag)
    return jsonify({})
