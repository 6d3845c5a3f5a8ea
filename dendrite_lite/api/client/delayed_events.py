"""Client-server API: MSC4140 delayed events. Scheduling is `?org.matrix.msc4140.delay=<ms>` on
PUT /send and /state (api/client/room_events.py calls `schedule`); managing them is here, on the
paths Synapse serves: cancel/restart/send need no access token (the delay_id is the secret, so a
client can still cancel while its session is gone), listing does."""

from __future__ import annotations

import secrets
from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import (
    Requester,
    access_token,
    authenticate,
    client_ip,
)
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.delayed_events import DelayedEvents

__all__ = ["bp", "delay_arg", "schedule"]

bp = Blueprint("client_delayed_events", __name__)

_PREFIX = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
DELAY_PARAM = "org.matrix.msc4140.delay"
_ACTIONS = ("cancel", "restart", "send")


def _service() -> DelayedEvents:
    svc = services().delayed_events
    if svc is None:
        raise MatrixError(Errcode.UNRECOGNIZED, "Unrecognized request")
    return svc


def delay_arg() -> int | None:
    """The delay a PUT /send or /state asks for (ms), None for an ordinary send."""
    raw = request.args.get(DELAY_PARAM)
    if raw is None:
        return None
    if not raw.isdigit():  # as Synapse's parse_integer: digits only, no sign
        raise MatrixError(Errcode.INVALID_PARAM, f"{DELAY_PARAM} must be a non-negative integer")
    return int(raw)


async def schedule(
    requester: Requester, room_id: str, event_type: str, state_key: str | None,
    content: dict[str, Any], delay_ms: int, txn_id: str | None = None,
) -> Response:
    """The answer to a PUT /send or /state with a delay: `{"delay_id"}`."""
    if requester.shadow_banned:  # nothing will be sent, and nothing says so
        return jsonify({"delay_id": f"syd_{secrets.token_urlsafe(15)}"})
    delay_id = await _service().add(
        user_id=requester.user_id, device_id=requester.device_id, room_id=room_id,
        event_type=event_type, state_key=state_key, content=content, delay_ms=delay_ms,
        txn_id=txn_id,
    )
    return jsonify({"delay_id": delay_id})


async def _manage(delay_id: str, action: str) -> Response:
    service = _service()
    # Synapse's key: the user when a token comes along, else the client's address.
    if access_token() is not None:
        service.check_mgmt_rate((await authenticate(services(), allow_guest=True)).user_id.lower())
    else:
        service.check_mgmt_rate(client_ip() or "")
    if action == "cancel":
        await service.cancel(delay_id)
    elif action == "restart":
        await service.restart(delay_id)
    else:
        await service.send_now(delay_id)
    return jsonify({})


@bp.post(f"{_PREFIX}/<delay_id>")
async def post_update(delay_id: str) -> Response:
    """POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delay_id}"""
    body = await json_body()
    if "action" not in body:
        raise MatrixError(Errcode.MISSING_PARAM, "'action' is missing")
    action = body["action"]
    if action not in _ACTIONS:
        raise MatrixError(Errcode.INVALID_PARAM, "'action' is not one of 'cancel', 'restart', 'send'")
    return await _manage(delay_id, action)


@bp.post(f"{_PREFIX}/<delay_id>/<any(cancel, restart, send):action>")
async def post_action(delay_id: str, action: str) -> Response:
    """POST /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delay_id}/{action}"""
    return await _manage(delay_id, action)


@bp.get(_PREFIX)
async def get_delayed_events() -> Response:
    """GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events"""
    requester = await authenticate(services(), allow_guest=True)
    service = _service()
    service.check_mgmt_rate(requester.user_id.lower())
    return jsonify({"delayed_events": await service.list_for_user(requester.user_id)})


@bp.get(f"{_PREFIX}/<delay_id>")
async def get_delayed_event(delay_id: str) -> Response:
    """GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events/{delay_id}"""
    requester = await authenticate(services(), allow_guest=True)
    service = _service()
    service.check_mgmt_rate(requester.user_id.lower())
    return jsonify(await service.get_for_user(requester.user_id, delay_id))
