"""Client-server API: send-to-device messaging (data/api/client-server/to_device.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body

__all__ = ["bp"]

bp = Blueprint("client_to_device", __name__)


@bp.put("/_matrix/client/v3/sendToDevice/<event_type>/<txn_id>")
async def send_to_device(event_type: str, txn_id: str) -> Response:
    """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)  # guest_access.md allows it
    body = await json_body()
    await svc.to_device.send(requester.user_id, requester.device_id, event_type, txn_id, body)
    return jsonify({})
