"""Client-server API: receipts (receipts.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.receipts import FULLY_READ

__all__ = ["bp"]

bp = Blueprint("client_receipts", __name__)


@bp.post("/_matrix/client/v3/rooms/<room_id>/receipt/<receipt_type>/<event_id>")
async def post_receipt(room_id: str, receipt_type: str, event_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"""
    svc = services()
    requester = await authenticate(svc)
    # Old clients send no body at all; the spec's body only carries the optional thread_id.
    body = await json_body(allow_empty=True)
    user_id = requester.user_id
    if receipt_type == FULLY_READ:
        # receipts.yaml: this "effectively calls /read_markers", which has no threads.
        if "thread_id" in body:
            raise MatrixError(Errcode.INVALID_PARAM, f"thread_id is not compatible with {FULLY_READ}")
        await svc.read_markers.set_fully_read(user_id, room_id, event_id)
    else:
        await svc.receipts.send_receipt(user_id, room_id, receipt_type, event_id, body.get("thread_id"))
    await svc.presence.bump_active(user_id)
    return jsonify({})

