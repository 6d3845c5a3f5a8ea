"""Federation API: our users' devices and end-to-end keys for other servers
(data/api/server-server/user_devices.yaml, user_keys.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.federation.auth import authenticated_origin

__all__ = ["bp"]

bp = Blueprint("federation_user_keys", __name__)


@bp.get("/_matrix/federation/v1/user/devices/<user_id>")
async def user_devices(user_id: str) -> Response:
    """GET /_matrix/federation/v1/user/devices/{userId}"""
    await authenticated_origin()
    return jsonify(await services().federation_keys.user_devices(user_id))


@bp.post("/_matrix/federation/v1/user/keys/query")
async def query_keys() -> Response:
    """POST /_matrix/federation/v1/user/keys/query"""
    await authenticated_origin()
    body = await json_body()
    return jsonify(await services().federation_keys.query(body))


@bp.post("/_matrix/federation/v1/user/keys/claim")
async def claim_keys() -> Response:
    """POST /_matrix/federation/v1/user/keys/claim"""
    await authenticated_origin()
    body = await json_body()
    return jsonify(await services().federation_keys.claim(body))
