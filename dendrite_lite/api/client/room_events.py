"""Client-server API: sending and reading room events (room_send.yaml, room_state.yaml,
rooms.yaml state/event, redaction.yaml)."""

from __future__ import annotations

import secrets

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import appservice_send_args, authenticate
from dendrite_lite.api.client.delayed_events import delay_arg, schedule
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.room_events import RoomEventsService
from dendrite_lite.rooms.shadow_ban import pretend_event_id

__all__ = ["bp", "room_events_service"]

bp = Blueprint("client_room_events", __name__)

_ROOM = "/_matrix/client/v3/rooms/<room_id>"


def room_events_service() -> RoomEventsService:
    svc = services()
    return RoomEventsService(
        svc.storage, svc.pipeline, svc.config.server.server_name, svc.ratelimits.send_user
    )


@bp.put(f"{_ROOM}/send/<event_type>/<txn_id>")
async def put_send(room_id: str, event_type: str, txn_id: str) -> Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
    requester = await authenticate(services(), allow_guest=True)
    content = await json_body()
    if (delay := delay_arg()) is not None:  # MSC4140
        return await schedule(requester, room_id, event_type, None, content, delay, txn_id)
    if requester.shadow_banned:
        return jsonify({"event_id": pretend_event_id(
            requester.user_id, requester.device_id, room_id, txn_id)})
    event_id = await room_events_service().send(
        user_id=requester.user_id, device_id=requester.device_id, room_id=room_id,
        event_type=event_type, txn_id=txn_id, content=content, **appservice_send_args(requester),
    )
    return jsonify({"event_id": event_id})


@bp.post(f"{_ROOM}/send/<event_type>")
async def post_send(room_id: str, event_type: str) -> Response:
    """POST /_matrix/client/v3/rooms/{roomId}/send/{eventType}

    NOTSPEC: not in the spec (it has only the PUT with a txnId); Synapse serves it and SyTest
    sends with it. Without a client txnId there is nothing to deduplicate: each POST gets a
    fresh one."""
    requester = await authenticate(services(), allow_guest=True)
    content = await json_body()
    if requester.shadow_banned:
        return jsonify({"event_id": pretend_event_id(
            requester.user_id, requester.device_id, room_id, None)})
    event_id = await room_events_service().send(
        user_id=requester.user_id, device_id=requester.device_id, room_id=room_id,
        event_type=event_type, txn_id=f"post-{secrets.token_urlsafe(12)}", content=content,
    )
    return jsonify({"event_id": event_id})


@bp.put(f"{_ROOM}/state/<event_type>", defaults={"state_key": ""})
@bp.put(f"{_ROOM}/state/<event_type>/<path:state_key>")
async def put_state(room_id: str, event_type: str, state_key: str) -> Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    requester = await authenticate(services(), allow_guest=True)
    content = await json_body()
    if (delay := delay_arg()) is not None:  # MSC4140
        return await schedule(requester, room_id, event_type, state_key, content, delay)
    if requester.shadow_banned and event_type != "m.room.member":
        return jsonify({"event_id": pretend_event_id(
            requester.user_id, requester.device_id, room_id, f"state {event_type} {state_key}")})
    event_id = await room_events_service().set_state(
        user_id=requester.user_id, room_id=room_id, event_type=event_type,
        state_key=state_key, content=content, **appservice_send_args(requester),
    )
    return jsonify({"event_id": event_id})


@bp.get(f"{_ROOM}/state/<event_type>", defaults={"state_key": ""})
@bp.get(f"{_ROOM}/state/<event_type>/<path:state_key>")
async def get_state_event(room_id: str, event_type: str, state_key: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    requester = await authenticate(services(), allow_guest=True)
    fmt = request.args.get("format", "content")
    if fmt not in ("content", "event"):
        raise MatrixError(Errcode.INVALID_PARAM, "format must be 'content' or 'event'")
    body = await room_events_service().get_state_event(
        user_id=requester.user_id, room_id=room_id, event_type=event_type,
        state_key=state_key, as_event=fmt == "event",
    )
    return jsonify(body)


@bp.get(f"{_ROOM}/state")
async def get_state(room_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/state"""
    requester = await authenticate(services(), allow_guest=True)
    return jsonify(await room_events_service().get_state(user_id=requester.user_id, room_id=room_id))


@bp.get(f"{_ROOM}/event/<event_id>")
async def get_event(room_id: str, event_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"""
    requester = await authenticate(services(), allow_guest=True)
    body = await room_events_service().get_event(
        user_id=requester.user_id, device_id=requester.device_id, room_id=room_id, event_id=event_id
    )
    return jsonify(body)


@bp.put(f"{_ROOM}/redact/<event_id>/<txn_id>")
@bp.post(f"{_ROOM}/redact/<event_id>", defaults={"txn_id": None})
async def put_redact(room_id: str, event_id: str, txn_id: str | None) -> Response:
    """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}

    NOTSPEC: the POST without a txnId, as for POST /send (Synapse serves both, SyTest redacts
    with it): each POST gets a fresh txnId."""
    requester = await authenticate(services())
    body = await json_body(allow_empty=True)
    if requester.shadow_banned:
        return jsonify({"event_id": pretend_event_id(
            requester.user_id, requester.device_id, room_id, txn_id)})
    redaction_id = await room_events_service().redact(
        user_id=requester.user_id, device_id=requester.device_id, room_id=room_id,
        event_id=event_id, txn_id=txn_id or f"post-{secrets.token_urlsafe(12)}",
        reason=body.get("reason"),
    )
    return jsonify({"event_id": redaction_id})
