"""Client-server API: device management (data/api/client-server/device_management.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate, authenticate_with_password
from dendrite_lite.appservice.accounts import create_device
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import devices

__all__ = ["bp"]

bp = Blueprint("client_devices", __name__)


@bp.get("/_matrix/client/v3/devices")
async def get_devices() -> Response:
    """GET /_matrix/client/v3/devices"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    found = await devices.list_devices(svc.storage, requester.user_id)
    return jsonify({"devices": [devices.device_json(d) for d in found]})


@bp.get("/_matrix/client/v3/devices/<path:device_id>")
async def get_device(device_id: str) -> Response:
    """GET /_matrix/client/v3/devices/{deviceId}"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    device = await devices.get_device(svc.storage, requester.user_id, device_id)
    return jsonify(devices.device_json(device))


@bp.put("/_matrix/client/v3/devices/<path:device_id>")
async def put_device(device_id: str) -> Response:
    """PUT /_matrix/client/v3/devices/{deviceId}

    Updates a device; an application service creates its user's device this way (MSC4190,
    201 when created)."""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    body = await json_body()
    display_name = body.get("display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise MatrixError(Errcode.INVALID_PARAM, "display_name must be a string")
    if requester.app_service is not None and await create_device(
        svc.storage, requester.user_id, device_id, display_name
    ):
        await svc.device_lists.changed(requester.user_id)
        created = jsonify({})
        created.status_code = 201
        return created
    if await devices.rename_device(svc.storage, requester.user_id, device_id, display_name):
        await svc.device_lists.changed(requester.user_id)
    return jsonify({})


@bp.delete("/_matrix/client/v3/devices/<path:device_id>")
async def delete_device(device_id: str) -> Response:
    """DELETE /_matrix/client/v3/devices/{deviceId}"""
    svc = services()
    body = await json_body(allow_empty=True)
    operation = f"delete device {device_id}"
    requester, session, _ = await authenticate_with_password(svc, body, operation)
    await devices.delete_devices(svc.storage, requester.user_id, [device_id])
    await svc.device_lists.changed(requester.user_id)
    svc.uia.finish(session)
    return jsonify({})


@bp.post("/_matrix/client/v3/delete_devices")
async def post_delete_devices() -> Response:
    """POST /_matrix/client/v3/delete_devices"""
    svc = services()
    body = await json_body()
    device_ids = body.get("devices")
    if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
        raise MatrixError(Errcode.BAD_JSON, "devices must be a list of device ids")
    # The session is bound to this exact set of devices: a completed password stage cannot be
    # reused to delete others.
    operation = "delete devices " + "\x00".join(sorted(device_ids))
    requester, session, _ = await authenticate_with_password(svc, body, operation)
    await devices.delete_devices(svc.storage, requester.user_id, device_ids)
    await svc.device_lists.changed(requester.user_id)
    svc.uia.finish(session)
    return jsonify({})
