"""Federation API: joins, leaves, knocks and invites (joins-v2.yaml, joins-v1.yaml make_join,
leaving-v2.yaml, knocks.yaml, invites-v2.yaml). Every handler authenticates the origin first."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.remote_membership import FederatedMembership

__all__ = ["bp"]

bp = Blueprint("federation_membership", __name__)

_V1 = "/_matrix/federation/v1"
_V2 = "/_matrix/federation/v2"


def _membership() -> FederatedMembership:
    fm = services().federated_membership
    if fm is None:
        raise MatrixError(Errcode.NOT_FOUND, "Federation is disabled on this server")
    return fm


async def _make(room_id: str, user_id: str, membership: str, offered: list[str] | None) -> Response:
    origin = await authenticated_origin()
    rv, template = await _membership().resident.make_membership(
        origin, room_id, user_id, membership, offered
    )
    return jsonify({"room_version": rv.identifier, "event": template})


@bp.get(f"{_V1}/make_join/<room_id>/<user_id>")
async def make_join(room_id: str, user_id: str) -> Response:
    """GET /_matrix/federation/v1/make_join/{roomId}/{userId}"""
    return await _make(room_id, user_id, "join", request.args.getlist("ver"))


@bp.get(f"{_V1}/make_leave/<room_id>/<user_id>")
async def make_leave(room_id: str, user_id: str) -> Response:
    """GET /_matrix/federation/v1/make_leave/{roomId}/{userId}"""
    return await _make(room_id, user_id, "leave", None)


@bp.get(f"{_V1}/make_knock/<room_id>/<user_id>")
async def make_knock(room_id: str, user_id: str) -> Response:
    """GET /_matrix/federation/v1/make_knock/{roomId}/{userId}"""
    offered = request.args.getlist("ver")
    if not offered:
        raise MatrixError(Errcode.MISSING_PARAM, "ver is required")
    return await _make(room_id, user_id, "knock", offered)


@bp.put(f"{_V2}/send_join/<room_id>/<event_id>")
async def send_join(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}"""
    origin = await authenticated_origin()
    body = await json_body()
    omit = request.args.get("omit_members", "false").lower() == "true"
    result = await _membership().resident.send_join(origin, room_id, event_id, body, omit_members=omit)
    return jsonify(result.to_json())


@bp.put(f"{_V1}/send_join/<room_id>/<event_id>")
async def send_join_v1(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v1/send_join/{roomId}/{eventId}

    Deprecated, still served as Synapse does for older servers: the v2 answer with `origin`,
    wrapped in the legacy `[200, body]` array (joins-v1.yaml)."""
    origin = await authenticated_origin()
    body = await json_body()
    result = await _membership().resident.send_join(origin, room_id, event_id, body)
    return jsonify([200, {**result.to_json(), "origin": services().config.server.server_name}])


@bp.put(f"{_V1}/send_leave/<room_id>/<event_id>")
async def send_leave_v1(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId} (deprecated: `[200, {}]`)"""
    origin = await authenticated_origin()
    body = await json_body()
    await _membership().resident.send_membership(origin, room_id, event_id, body, "leave")
    return jsonify([200, {}])


@bp.put(f"{_V2}/send_leave/<room_id>/<event_id>")
async def send_leave(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}"""
    origin = await authenticated_origin()
    body = await json_body()
    await _membership().resident.send_membership(origin, room_id, event_id, body, "leave")
    return jsonify({})


@bp.put(f"{_V1}/send_knock/<room_id>/<event_id>")
async def send_knock(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}"""
    origin = await authenticated_origin()
    body = await json_body()
    stripped = await _membership().resident.send_knock(origin, room_id, event_id, body)
    return jsonify({"knock_room_state": stripped})


@bp.put(f"{_V2}/invite/<room_id>/<event_id>")
async def invite(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v2/invite/{roomId}/{eventId}"""
    origin = await authenticated_origin()
    body = await json_body()
    stripped = body.get("invite_room_state", [])
    if not isinstance(stripped, list):
        raise MatrixError(Errcode.BAD_JSON, "invite_room_state must be a list")
    signed = await _membership().invites.receive_invite(
        origin, room_id, event_id, body.get("room_version"), body.get("event"), stripped
    )
    return jsonify({"event": signed})


@bp.put(f"{_V1}/invite/<room_id>/<event_id>")
async def invite_v1(room_id: str, event_id: str) -> Response:
    """PUT /_matrix/federation/v1/invite/{roomId}/{eventId}

    Deprecated, still served as Synapse does: the body is the event, with the stripped state in
    its unsigned; the room version "must" be taken as 1 or 2 (invites-v1.yaml), whose events are
    alike; the answer is wrapped in `[200, body]`."""
    origin = await authenticated_origin()
    body = await json_body()
    unsigned = body.get("unsigned")
    stripped = unsigned.get("invite_room_state", []) if isinstance(unsigned, dict) else []
    if not isinstance(stripped, list):
        raise MatrixError(Errcode.BAD_JSON, "unsigned.invite_room_state must be a list")
    signed = await _membership().invites.receive_invite(origin, room_id, event_id, "1", body, stripped)
    return jsonify([200, {"event": signed}])
