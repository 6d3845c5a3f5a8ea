"""Synapse-compatible admin API for a user's devices (Synapse's user_admin_api.md, "User
devices"): list, show, create, rename and delete them. Server admins only."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.admin.users import user_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users.sessions import validate_device_id

__all__ = ["bp"]

bp = Blueprint("synapse_admin_user_devices", __name__)

_DEVICES = "/_synapse/admin/v2/users/<user_id>/devices"


@bp.get(_DEVICES)
async def list_devices(user_id: str) -> Response:
    """GET /_synapse/admin/v2/users/{userId}/devices"""
    svc = services()
    await require_admin(svc)
    devices = await user_admin(svc).devices(user_id)
    return jsonify({"devices": devices, "total": len(devices)})


@bp.post(_DEVICES)
async def create_device(user_id: str) -> Response:
    """POST /_synapse/admin/v2/users/{userId}/devices"""
    svc = services()
    await require_admin(svc)
    device_id = validate_device_id((await json_body()).get("device_id"))
    await user_admin(svc).create_device(user_id, device_id)
    return jsonify({})


@bp.get(f"{_DEVICES}/<device_id>")
async def get_device(user_id: str, device_id: str) -> Response:
    """GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(await user_admin(svc).device(user_id, device_id))


@bp.put(f"{_DEVICES}/<device_id>")
async def put_device(user_id: str, device_id: str) -> Response:
    """PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}"""
    svc = services()
    await require_admin(svc)
    name = (await json_body()).get("display_name")
    if name is not None and not isinstance(name, str):
        raise MatrixError(Errcode.INVALID_PARAM, "display_name must be a string")
    await user_admin(svc).rename_device(user_id, device_id, name)
    return jsonify({})


@bp.delete(f"{_DEVICES}/<device_id>")
async def delete_device(user_id: str, device_id: str) -> Response:
    """DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}"""
    svc = services()
    await require_admin(svc)
    await user_admin(svc).delete_devices(user_id, [device_id])
    return jsonify({})


@bp.post("/_synapse/admin/v2/users/<user_id>/delete_devices")
async def delete_devices(user_id: str) -> Response:
    """POST /_synapse/admin/v2/users/{userId}/delete_devices"""
    svc = services()
    await require_admin(svc)
    devices = (await json_body()).get("devices")
    if devices is None:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing params: devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise MatrixError(Errcode.INVALID_PARAM, "devices must be a list of device ids")
    await user_admin(svc).delete_devices(user_id, devices)
    return jsonify({})
