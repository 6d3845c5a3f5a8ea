"""Client-server API: dehydrated devices (MSC3814, unstable, the paths Synapse serves). Guests may
not park a device: they have no secret storage to keep its key in."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.api.errors import json_body
from dendrite_lite.request_body import optional_field

__all__ = ["bp"]

bp = Blueprint("client_dehydrated_devices", __name__)

PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
DEFAULT_LIMIT = 100


@bp.put(PREFIX)
async def put_dehydrated_device() -> Response:
    """PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body()
    device_id = await svc.dehydrated_devices.put(requester.user_id, body)
    return jsonify({"device_id": device_id})


@bp.get(PREFIX)
async def get_dehydrated_device() -> Response:
    """GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
    svc = services()
    requester = await authenticate(svc)
    device = await svc.dehydrated_devices.get(requester.user_id)
    return jsonify({"device_id": device.device_id, "device_data": device.device_data})


@bp.delete(PREFIX)
async def delete_dehydrated_device() -> Response:
    """DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify({"device_id": await svc.dehydrated_devices.delete(requester.user_id)})


@bp.post(f"{PREFIX}/<device_id>/events")
async def post_dehydrated_events(device_id: str) -> Response:
    """POST /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events

    The MSC's form: the token in the body, `next_batch` always in the answer (an empty batch
    with it tells the client it has everything)."""
    svc = services()
    requester = await authenticate(svc)
    body = await json_body(allow_empty=True)
    next_batch = optional_field(body, "next_batch", "string")
    batch = await svc.dehydrated_devices.events(
        requester.user_id, device_id, next_batch, int_arg("limit", DEFAULT_LIMIT)
    )
    return jsonify({"events": batch.events, "next_batch": batch.next_batch})


@bp.get(f"{PREFIX}/<device_id>/events")
async def get_dehydrated_events(device_id: str) -> Response:
    """GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events

    Synapse's later form: the token in `from`, `next_batch` only while more remain."""
    svc = services()
    requester = await authenticate(svc)
    batch = await svc.dehydrated_devices.events(
        requester.user_id, device_id, request.args.get("from"), int_arg("limit", DEFAULT_LIMIT)
    )
    if not batch.more:
        return jsonify({"events": batch.events})
    return jsonify({"events": batch.events, "next_batch": batch.next_batch})
