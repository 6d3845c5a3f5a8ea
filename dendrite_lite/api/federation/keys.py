"""Federation API: publishing our signing key (server-server API §Publishing Keys,
data/api/server-server/keys_server.yaml)."""

from __future__ import annotations

import time

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.federation.keyring import own_key_response

__all__ = ["bp"]

bp = Blueprint("federation_keys", __name__)


@bp.get("/_matrix/key/v2/server")
async def get_server_keys() -> Response:
    """GET /_matrix/key/v2/server"""
    svc = services()
    now_ms = int(time.time() * 1000)
    # The same signed answer our notary gives for us (federation.keyring.own_key_response).
    return jsonify(own_key_response(svc.config.server.server_name, svc.server_key, now_ms))
