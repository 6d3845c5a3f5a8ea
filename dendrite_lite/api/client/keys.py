"""Client-server API: end-to-end encryption keys (data/api/client-server/keys.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("client_keys", __name__)


@bp.post("/_matrix/client/v3/keys/upload")
async def upload_keys() -> Response:
    """POST /_matrix/client/v3/keys/upload"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    return jsonify(await svc.keys.upload(requester.user_id, requester.device_id, body))


@bp.post("/_matrix/client/v3/keys/query")
async def query_keys() -> Response:
    """POST /_matrix/client/v3/keys/query"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    return jsonify(await svc.keys.query(requester.user_id, body))


@bp.post("/_matrix/client/v3/keys/claim")
async def claim_keys() -> Response:
    """POST /_matrix/client/v3/keys/claim"""
    svc = services()
    await authenticate(svc)
    body = await json_body()
    return jsonify(await svc.keys.claim(body))


@bp.get("/_matrix/client/v3/keys/changes")
async def key_changes() -> Response:
    """GET /_matrix/client/v3/keys/changes"""
    svc = services()
    requester = await authenticate(svc)
    since, until = request.args.get("from"), request.args.get("to")
    if since is None or until is None:
        raise MatrixError(Errcode.MISSING_PARAM, "from and to are required")
    changes = await svc.device_lists.key_changes(requester.user_id, since, until)
    return jsonify(changes.to_json())
