"""Client-server API: server-side key backups (data/api/client-server/key_backup.yaml)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.e2ee.key_backup import parse_keys
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_room_keys", __name__)

_VERSION = "/_matrix/client/v3/room_keys/version"
_KEYS = "/_matrix/client/v3/room_keys/keys"


@bp.post(_VERSION)
async def create_version() -> Response:
    """POST /_matrix/client/v3/room_keys/version"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    return jsonify(await svc.key_backup.create_version(requester.user_id, body))


@bp.get(_VERSION)
@bp.get(f"{_VERSION}/<version>")
async def get_version(version: str | None = None) -> Response:
    """GET /_matrix/client/v3/room_keys/version[/{version}]"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.key_backup.get_version(requester.user_id, version))


@bp.put(f"{_VERSION}/<version>")
async def update_version(version: str) -> Response:
    """PUT /_matrix/client/v3/room_keys/version/{version}"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    await svc.key_backup.update_version(requester.user_id, version, body)
    return jsonify({})


@bp.delete(f"{_VERSION}/<version>")
async def delete_version(version: str) -> Response:
    """DELETE /_matrix/client/v3/room_keys/version/{version}"""
    svc = services()
    requester = await authenticate(svc)
    await svc.key_backup.delete_version(requester.user_id, version)
    return jsonify({})


@bp.route(_KEYS, methods=["GET", "PUT", "DELETE"])
@bp.route(f"{_KEYS}/<room_id>", methods=["GET", "PUT", "DELETE"])
@bp.route(f"{_KEYS}/<room_id>/<session_id>", methods=["GET", "PUT", "DELETE"])
async def room_keys(room_id: str | None = None, session_id: str | None = None) -> Response:
    """GET, PUT and DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    svc = services()
    requester = await authenticate(svc)
    version = request.args.get("version")
    if version is None:
        raise MatrixError(Errcode.MISSING_PARAM, "version is required")
    backup = svc.key_backup
    if request.method == "GET":
        return jsonify(await backup.get_keys(requester.user_id, version, room_id, session_id))
    if request.method == "DELETE":
        return jsonify(await backup.delete_keys(requester.user_id, version, room_id, session_id))
    body: Any = await json_body()
    # Each variant's body is one level of the whole-backup shape.
    if session_id is not None:
        body = {"sessions": {session_id: body}}
    if room_id is not None:
        body = {"rooms": {room_id: body}}
    return jsonify(await backup.put_keys(requester.user_id, version, parse_keys(body)))
