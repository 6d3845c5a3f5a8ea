"""Client-server API: client config (account-data.yaml), global and per-room account data."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_account_data", __name__)

_GLOBAL = "/_matrix/client/v3/user/<user_id>/account_data/<data_type>"
_ROOM = "/_matrix/client/v3/user/<user_id>/rooms/<room_id>/account_data/<data_type>"


@bp.get(_GLOBAL)
async def get_global(user_id: str, data_type: str) -> Response:
    """GET /_matrix/client/v3/user/{userId}/account_data/{type}"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.account_data.get(requester.user_id, user_id, None, data_type))


@bp.put(_GLOBAL)
async def put_global(user_id: str, data_type: str) -> Response:
    """PUT /_matrix/client/v3/user/{userId}/account_data/{type}"""
    svc = services()
    requester = await authenticate(svc)
    content = await json_body()
    await svc.account_data.set(requester.user_id, user_id, None, data_type, content)
    return jsonify({})


@bp.get(_ROOM)
async def get_room(user_id: str, room_id: str, data_type: str) -> Response:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.account_data.get(requester.user_id, user_id, room_id, data_type))


@bp.put(_ROOM)
async def put_room(user_id: str, room_id: str, data_type: str) -> Response:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    svc = services()
    requester = await authenticate(svc)
    content = await json_body()
    await svc.account_data.set(requester.user_id, user_id, room_id, data_type, content)
    return jsonify({})
