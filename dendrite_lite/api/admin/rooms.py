"""Synapse-compatible admin API for rooms (Synapse's docs/admin_api/rooms.md): the room list,
a room's details, members, state and messages, blocking, and making a user a room admin; and
joining a user to a room (room_membership.md).
Server admins only (or the admin socket)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.admin.paging import non_negative_arg
from dendrite_lite.api.app import services
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field, required_field
from dendrite_lite.rooms.admin import parse_room_query
from dendrite_lite.rooms.admin_history import AdminMessagesRequest
from dendrite_lite.rooms.history import DEFAULT_LIMIT
from dendrite_lite.sync.filters import parse_room_event_filter_param

__all__ = ["bp"]

bp = Blueprint("synapse_admin_rooms", __name__)

_V1 = "/_synapse/admin/v1/rooms"


def _optional_bool(name: str) -> bool | None:
    value = request.args.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be 'true' or 'false'")
    return value == "true"


@bp.get(_V1)
async def list_rooms() -> Response:
    """GET /_synapse/admin/v1/rooms"""
    svc = services()
    await require_admin(svc)
    args = request.args
    query = parse_room_query(
        args.get("order_by"),
        args.get("dir"),
        args.get("search_term"),
        _optional_bool("public_rooms"),
        _optional_bool("empty_rooms"),
    )
    return jsonify(
        await svc.room_admin.list_rooms(
            query, non_negative_arg("from", 0), non_negative_arg("limit", 100)
        )
    )


@bp.get(f"{_V1}/<room_id>")
async def room_details(room_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.room_admin.details(room_id))


@bp.get(f"{_V1}/<room_id>/members")
async def room_members(room_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/members"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.room_admin.members(room_id))


@bp.get(f"{_V1}/<room_id>/state")
async def room_state(room_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/state"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.room_admin.state(room_id, request.args.get("type")))


@bp.get(f"{_V1}/<room_id>/messages")
async def room_messages(room_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/messages"""
    svc = services()
    await require_admin(svc)
    args = request.args
    req = AdminMessagesRequest(
        room_id=room_id,
        dir=args.get("dir", "f"),  # rooms.md: forwards unless asked
        from_token=args.get("from"),
        to_token=args.get("to"),
        limit=int_arg("limit", DEFAULT_LIMIT),
        filter=parse_room_event_filter_param(args.get("filter")),
    )
    return jsonify(await svc.room_admin.history.messages(req))


@bp.get(f"{_V1}/<room_id>/timestamp_to_event")
async def room_timestamp_to_event(room_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/timestamp_to_event"""
    svc = services()
    await require_admin(svc)
    ts = non_negative_arg("ts")
    return jsonify(
        await svc.room_admin.history.timestamp_to_event(
            room_id, ts, request.args.get("dir", "f")
        )
    )


@bp.get(f"{_V1}/<room_id>/context/<event_id>")
async def room_event_context(room_id: str, event_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/context/{eventId}"""
    svc = services()
    await require_admin(svc)
    limit = int_arg("limit", DEFAULT_LIMIT)
    return jsonify(await svc.room_admin.history.context(room_id, event_id, limit))


@bp.get(f"{_V1}/<room_id>/block")
async def get_block(room_id: str) -> Response:
    """GET /_synapse/admin/v1/rooms/{roomId}/block"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.room_admin.block_status(room_id))


@bp.put(f"{_V1}/<room_id>/block")
async def put_block(room_id: str) -> Response:
    """PUT /_synapse/admin/v1/rooms/{roomId}/block"""
    svc = services()
    admin = await require_admin(svc)
    block = required_field(await json_body(), "block", "boolean")
    return jsonify(await svc.room_admin.set_blocked(room_id, block, admin.user_id))


@bp.post(f"{_V1}/<room_id_or_alias>/make_room_admin")
async def make_room_admin(room_id_or_alias: str) -> Response:
    """POST /_synapse/admin/v1/rooms/{roomIdOrAlias}/make_room_admin"""
    svc = services()
    admin = await require_admin(svc)
    # The caller by default (rooms.md); on the admin socket there is no caller to name.
    user_id = (
        optional_field(await json_body(allow_empty=True), "user_id", "string")
        or admin.user_id
    )
    if not user_id:
        raise MatrixError(
            Errcode.MISSING_PARAM, "user_id is required on the admin socket"
        )
    await svc.room_admin.make_room_admin(room_id_or_alias, user_id)
    return jsonify({})


@bp.post("/_synapse/admin/v1/join/<room_id_or_alias>")
async def join_user(room_id_or_alias: str) -> Response:
    """POST /_synapse/admin/v1/join/{roomIdOrAlias}"""
    svc = services()
    admin = await require_admin(svc)
    user_id = required_field(await json_body(), "user_id", "string")
    room_id = await svc.room_admin.join_user(room_id_or_alias, user_id, admin.user_id)
    return jsonify({"room_id": room_id})
