"""Synapse-compatible admin API for deleting rooms (Synapse's docs/admin_api/rooms.md, Delete
Room API): v1 answers when done, v2 at once with a delete id whose status can be asked."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.rooms.shutdown import parse_shutdown

__all__ = ["bp"]

bp = Blueprint("synapse_admin_room_deletion", __name__)


@bp.delete("/_synapse/admin/v1/rooms/<room_id>")
async def delete_room_v1(room_id: str) -> Response:
    """DELETE /_synapse/admin/v1/rooms/{roomId}"""
    svc = services()
    admin = await require_admin(svc)
    req = parse_shutdown(
        await json_body(allow_empty=True), svc.config.server.server_name
    )
    return jsonify(await svc.room_shutdown.delete_now(room_id, req, admin.user_id))


@bp.delete("/_synapse/admin/v2/rooms/<room_id>")
async def delete_room_v2(room_id: str) -> Response:
    """DELETE /_synapse/admin/v2/rooms/{roomId}"""
    svc = services()
    admin = await require_admin(svc)
    req = parse_shutdown(await json_body(), svc.config.server.server_name)
    return jsonify(
        {"delete_id": await svc.room_shutdown.start(room_id, req, admin.user_id)}
    )


@bp.get("/_synapse/admin/v2/rooms/<room_id>/delete_status")
async def room_delete_status(room_id: str) -> Response:
    """GET /_synapse/admin/v2/rooms/{roomId}/delete_status"""
    svc = services()
    await require_admin(svc)
    return jsonify(svc.room_shutdown.statuses(room_id))


@bp.get("/_synapse/admin/v2/rooms/delete_status/<delete_id>")
async def delete_status(delete_id: str) -> Response:
    """GET /_synapse/admin/v2/rooms/delete_status/{deleteId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(svc.room_shutdown.status(delete_id))
