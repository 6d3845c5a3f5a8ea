"""Synapse-compatible user admin API (Synapse's docs/admin_api/user_admin_api.md): list, show,
create and change users, their admin flag, deactivation, password reset, whois, joined rooms,
shadow bans and username availability. Devices are in user_devices.py. Server admins only."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import Services, services
from dendrite_lite.api.client.query_args import bool_arg, int_arg, str_arg
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.rooms.membership import MembershipService
from dendrite_lite.storage.accounts_admin import UserFilter
from dendrite_lite.users import registration
from dendrite_lite.users.user_admin import UserAdmin, UserListQuery, parse_user_update

__all__ = ["bp", "user_admin"]

bp = Blueprint("synapse_admin_users", __name__)

_V1 = "/_synapse/admin/v1"
_V2 = "/_synapse/admin/v2"


def user_admin(svc: Services) -> UserAdmin:
    server_name = svc.config.server.server_name
    membership = MembershipService(
        svc.storage,
        svc.pipeline,
        server_name,
        svc.federated_membership,
        default_room_version=get_room_version(svc.config.server.default_room_version),
        account_data=svc.account_data,
    )
    return UserAdmin(
        svc.storage, svc.pipeline, server_name, membership, svc.device_lists,
        bindings=svc.threepid_bindings,
    )


def _optional_bool(name: str) -> bool | None:
    return bool_arg(name) if name in request.args else None


def _list_query(version: int) -> UserListQuery:
    direction = request.args.get("dir", "f")
    if direction not in ("f", "b"):
        raise MatrixError(Errcode.INVALID_PARAM, "dir must be 'f' or 'b'")
    # `locked` (include locked users) changes nothing: no account is ever locked here.
    bool_arg("locked")
    return UserListQuery(
        filter=UserFilter(
            name=request.args.get("name"),
            user_id=request.args.get("user_id"),
            guests=bool_arg("guests", default=True),
            # v2: `deactivated=true` adds deactivated users to the others; v3: it filters.
            deactivated=(
                _optional_bool("deactivated")
                if version == 3
                else (None if bool_arg("deactivated") else False)
            ),
            admins=_optional_bool("admins"),
            not_user_types=tuple(request.args.getlist("not_user_type")),
        ),
        order_by=request.args.get("order_by", "name"),
        backwards=direction == "b",
        offset=int_arg("from", 0),
        limit=int_arg("limit", 100),
    )


@bp.get(f"{_V2}/users", defaults={"version": 2})
@bp.get("/_synapse/admin/v3/users", defaults={"version": 3})
async def list_users(version: int) -> Response:
    """GET /_synapse/admin/v2/users and /_synapse/admin/v3/users"""
    svc = services()
    await require_admin(svc)
    return jsonify(await user_admin(svc).list_users(_list_query(version)))


@bp.get(f"{_V2}/users/<user_id>")
async def get_user(user_id: str) -> Response:
    """GET /_synapse/admin/v2/users/{userId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(await user_admin(svc).details(user_id))


@bp.put(f"{_V2}/users/<user_id>")
async def put_user(user_id: str) -> tuple[Response, int]:
    """PUT /_synapse/admin/v2/users/{userId}: 201 when it created the user, 200 otherwise."""
    svc = services()
    requester = await require_admin(svc)
    update = parse_user_update(await json_body())
    created, details = await user_admin(svc).upsert(
        user_id, update, by=requester.user_id
    )
    return jsonify(details), 201 if created else 200


@bp.get(f"{_V1}/users/<user_id>/admin")
async def get_user_admin(user_id: str) -> Response:
    """GET /_synapse/admin/v1/users/{userId}/admin"""
    svc = services()
    await require_admin(svc)
    account = await user_admin(svc).account(user_id, "look up admin status of")
    return jsonify({"admin": account.is_admin})


@bp.put(f"{_V1}/users/<user_id>/admin")
async def put_user_admin(user_id: str) -> Response:
    """PUT /_synapse/admin/v1/users/{userId}/admin"""
    svc = services()
    requester = await require_admin(svc)
    body = await json_body()
    if "admin" not in body:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing params: admin")
    if not isinstance(body["admin"], bool):
        raise MatrixError(Errcode.INVALID_PARAM, "admin must be a boolean")
    await user_admin(svc).set_admin(user_id, body["admin"], by=requester.user_id)
    return jsonify({})


@bp.post(f"{_V1}/deactivate/<user_id>")
async def post_deactivate(user_id: str) -> Response:
    """POST /_synapse/admin/v1/deactivate/{userId}"""
    svc = services()
    await require_admin(svc)
    erase = (await json_body(allow_empty=True)).get("erase", False)
    if not isinstance(erase, bool):
        raise MatrixError(Errcode.BAD_JSON, "Param 'erase' must be a boolean, if given")
    unbound = await user_admin(svc).deactivate(user_id, erase=erase)
    return jsonify({"id_server_unbind_result": unbound})


@bp.post(f"{_V1}/reset_password/<user_id>")
async def post_reset_password(user_id: str) -> Response:
    """POST /_synapse/admin/v1/reset_password/{userId}"""
    svc = services()
    await require_admin(svc)
    body = await json_body()
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise MatrixError(Errcode.INVALID_PARAM, "logout_devices must be a boolean")
    await user_admin(svc).reset_password(
        user_id, body.get("new_password"), logout_devices=logout_devices
    )
    return jsonify({})


@bp.get(f"{_V1}/whois/<user_id>")
async def get_whois(user_id: str) -> Response:
    """GET /_synapse/admin/v1/whois/{userId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(await user_admin(svc).whois(user_id))


@bp.get(f"{_V1}/users/<user_id>/joined_rooms")
async def get_joined_rooms(user_id: str) -> Response:
    """GET /_synapse/admin/v1/users/{userId}/joined_rooms"""
    svc = services()
    await require_admin(svc)
    rooms = await user_admin(svc).joined_rooms(user_id)
    return jsonify({"joined_rooms": rooms, "total": len(rooms)})


@bp.post(f"{_V1}/users/<user_id>/shadow_ban")
@bp.delete(f"{_V1}/users/<user_id>/shadow_ban")
async def shadow_ban(user_id: str) -> Response:
    """POST (ban) and DELETE (unban) /_synapse/admin/v1/users/{userId}/shadow_ban"""
    svc = services()
    await require_admin(svc)
    await user_admin(svc).set_shadow_banned(user_id, request.method == "POST")
    return jsonify({})


@bp.get(f"{_V1}/username_available")
async def get_username_available() -> Response:
    """GET /_synapse/admin/v1/username_available: /register/available, open or not."""
    svc = services()
    await require_admin(svc)
    await registration.check_username_available(
        svc.storage, svc.config.server.server_name, str_arg("username")
    )
    return jsonify({"available": True})
