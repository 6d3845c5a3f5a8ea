"""Federation API: publishing our signing key (server-server API §Publishing Keys,
data/api/server-server/keys_server.yaml)."""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, jsonify
from signedjson.sign import sign_json

from dendrite_lite.api.app import services
from dendrite_lite.crypto.keys import ServerKey

__all__ = ["bp", "server_keys_response", "KEY_VALIDITY_MS"]

bp = Blueprint("federation_keys", __name__)

# Remote servers use the lesser of valid_until_ts and now + 7 days, so publishing longer is
# pointless; publishing the full 7 days means fewer refetches from peers, at the cost that a
# rotated-out key is trusted by caches for up to a week (old_verify_keys handles rotation).
KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000


def server_keys_response(server_name: str, key: ServerKey, now_ms: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "server_name": server_name,
        "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
        "old_verify_keys": {},
        "valid_until_ts": now_ms + KEY_VALIDITY_MS,
    }
    return sign_json(body, server_name, key.signing_key)


@bp.get("/_matrix/key/v2/server")
async def get_server_keys() -> Response:
    """GET /_matrix/key/v2/server"""
    svc = services()
    now_ms = int(time.time() * 1000)
    return jsonify(server_keys_response(svc.config.server.server_name, svc.server_key, now_ms))
