"""Client-server API: simplified sliding sync (MSC4186), as matrix-rust-sdk clients (Element X)
call it: `pos`, `timeout` and `set_presence` in the query string, the rest in the JSON body."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.sync.sliding.request import parse_request

__all__ = ["UNSTABLE_FEATURE", "bp"]

bp = Blueprint("client_sliding_sync", __name__)

# The /versions flag clients check before using it (MSC4186 §Unstable prefix).
UNSTABLE_FEATURE = "org.matrix.simplified_msc3575"


@bp.post(f"/_matrix/client/unstable/{UNSTABLE_FEATURE}/sync")
async def post_sliding_sync() -> Response:
    """POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    req = parse_request(
        requester.user_id,
        requester.device_id,
        await json_body(allow_empty=True),
        request.args,
    )
    return jsonify(await svc.sliding_sync.sync(req))
