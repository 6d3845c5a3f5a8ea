"""Client-server API: room creation and membership (create_room.yaml, joining.yaml, knocking.yaml,
inviting.yaml, leaving.yaml, kicking.yaml, banning.yaml, list_joined_rooms.yaml, rooms.yaml
members/joined_members)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.rooms.creation import parse_create_room
from dendrite_lite.rooms.membership import (
    MEMBERSHIPS,
    MembershipService,
    parse_target_user,
)
from dendrite_lite.rooms.room_events import client_events
from dendrite_lite.rooms.shadow_ban import without_invites
from dendrite_lite.rooms.upgrade import parse_upgrade, upgrade_room
from dendrite_lite.sync.tokens import parse_pagination_token
from dendrite_lite.users.identity_server import parse_threepid_invite

__all__ = ["bp"]

bp = Blueprint("client_rooms", __name__)

_V3 = "/_matrix/client/v3"


def _service() -> MembershipService:
    svc = services()
    return MembershipService(
        svc.storage, svc.pipeline, svc.config.server.server_name, svc.federated_membership,
        default_room_version=get_room_version(svc.config.server.default_room_version),
        account_data=svc.account_data, appservice_requests=svc.appservice_requests,
        third_party=svc.third_party_invites,
    )


def _via() -> list[str]:
    # `via` is the current name; `server_name` the deprecated one many clients still send.
    return [*request.args.getlist("via"), *request.args.getlist("server_name")]


@bp.post(f"{_V3}/createRoom")
async def post_create_room() -> Response:
    """POST /_matrix/client/v3/createRoom"""
    requester = await authenticate(services())
    req = parse_create_room(await json_body())
    if requester.shadow_banned:
        req = without_invites(req)
    room_id, alias = await _service().create_room(requester.user_id, req)
    body = {"room_id": room_id}
    if alias is not None:
        body["room_alias"] = alias  # deprecated in the spec, still read by older clients
    return jsonify(body)


@bp.post(f"{_V3}/join/<room_id_or_alias>")
async def post_join(room_id_or_alias: str) -> Response:
    """POST /_matrix/client/v3/join/{roomIdOrAlias}

    Guests may join (guest_access.md lists /rooms/{roomId}/join; Synapse allows this form too)."""
    requester = await authenticate(services(), allow_guest=True)
    body = await json_body(allow_empty=True)
    room_id = await _service().join(
        requester.user_id, room_id_or_alias, reason=body.get("reason"), servers=_via(),
        guest=requester.is_guest, body=body,
    )
    return jsonify({"room_id": room_id})


@bp.post(f"{_V3}/knock/<room_id_or_alias>")
async def post_knock(room_id_or_alias: str) -> Response:
    """POST /_matrix/client/v3/knock/{roomIdOrAlias}"""
    requester = await authenticate(services())
    body = await json_body(allow_empty=True)
    room_id = await _service().knock(
        requester.user_id, room_id_or_alias, reason=body.get("reason"), servers=_via()
    )
    return jsonify({"room_id": room_id})


@bp.post(f"{_V3}/rooms/<room_id>/join")
async def post_room_join(room_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/join"""
    if not room_id.startswith("!"):
        raise MatrixError(Errcode.INVALID_PARAM, f"{room_id!r} is not a room id")
    return await post_join(room_id)


@bp.post(f"{_V3}/rooms/<room_id>/<any(invite, kick, ban, unban):action>")
async def post_member_action(room_id: str, action: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/invite|kick|ban|unban

    An invite naming no user_id but an address is the third-party form (third_party_membership
    .yaml): the identity server says who has it, or keeps the invite until someone binds it."""
    requester = await authenticate(services())
    body = await json_body()
    if action == "invite" and "user_id" not in body and ("medium" in body or "address" in body):
        threepid = parse_threepid_invite(body)
        if not requester.shadow_banned:  # else as if sent (rooms/shadow_ban.py)
            await _service().invite_3pid(requester.user_id, room_id, threepid)
        return jsonify({})
    target = parse_target_user(body)
    if action == "invite" and requester.shadow_banned:
        return jsonify({})  # as if sent (rooms/shadow_ban.py)
    method = getattr(_service(), action)
    await method(requester.user_id, room_id, target, reason=body.get("reason"))
    return jsonify({})


@bp.post(f"{_V3}/rooms/<room_id>/leave")
async def post_leave(room_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/leave"""
    requester = await authenticate(services(), allow_guest=True)
    body = await json_body(allow_empty=True)
    await _service().leave(requester.user_id, room_id, reason=body.get("reason"))
    return jsonify({})


@bp.post(f"{_V3}/rooms/<room_id>/forget")
async def post_forget(room_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/forget"""
    requester = await authenticate(services())
    await _service().forget(requester.user_id, room_id)
    return jsonify({})


@bp.get(f"{_V3}/joined_rooms")
async def get_joined_rooms() -> Response:
    """GET /_matrix/client/v3/joined_rooms"""
    requester = await authenticate(services())
    return jsonify({"joined_rooms": await _service().joined_rooms(requester.user_id)})


def _membership_param(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and value not in MEMBERSHIPS:
        raise MatrixError(Errcode.INVALID_PARAM, f"{name} must be one of {', '.join(MEMBERSHIPS)}")
    return value


@bp.get(f"{_V3}/rooms/<room_id>/members")
async def get_members(room_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/members"""
    requester = await authenticate(services(), allow_guest=True)
    at = request.args.get("at")
    members = await _service().members(
        requester.user_id,
        room_id,
        at=parse_pagination_token(at) if at else None,
        membership=_membership_param("membership"),
        not_membership=_membership_param("not_membership"),
    )
    return jsonify({"chunk": await client_events(services().storage, members)})


@bp.get(f"{_V3}/rooms/<room_id>/joined_members")
async def get_joined_members(room_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/joined_members"""
    requester = await authenticate(services())
    return jsonify({"joined": await _service().joined_members(requester.user_id, room_id)})


@bp.post(f"{_V3}/rooms/<room_id>/upgrade")
async def post_upgrade(room_id: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/upgrade"""
    svc = services()
    requester = await authenticate(svc)
    req = parse_upgrade(await json_body())
    new_room = await upgrade_room(
        svc.storage, svc.pipeline, server_name=svc.config.server.server_name,
        requester=requester.user_id, room_id=room_id, request=req, account_data=svc.account_data,
    )
    return jsonify({"replacement_room": new_room})
