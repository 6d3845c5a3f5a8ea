"""Client-server API: the deprecated sync endpoints (old_sync.yaml, room_initial_sync.yaml).

GET /events is also served under the r0 prefix: SyTest and old clients call /r0/events, and
Synapse serves it there."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import bool_arg, int_arg
from dendrite_lite.api.client.room_events import room_events_service
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.history import DEFAULT_LIMIT
from dendrite_lite.sync.legacy import LegacySyncService

__all__ = ["bp"]

bp = Blueprint("client_legacy_sync", __name__)


def _service() -> LegacySyncService:
    svc = services()
    rooms = room_events_service()

    async def get_state(user_id: str, room_id: str) -> list[dict[str, object]]:
        return await rooms.get_state(user_id=user_id, room_id=room_id)

    async def get_event(
        user_id: str, device_id: str | None, room_id: str, event_id: str
    ) -> dict[str, object]:
        return await rooms.get_event(
            user_id=user_id, device_id=device_id, room_id=room_id, event_id=event_id
        )

    return LegacySyncService(
        svc.storage, svc.sync, svc.history, get_state, get_event,
        presence=svc.presence, account_data=svc.account_data, receipts=svc.receipts,
        typing=svc.typing,
    )


def _non_negative(name: str, default: int) -> int:
    value = int_arg(name, default)
    if value < 0:
        raise MatrixError(Errcode.INVALID_PARAM, f"{name} must not be negative")
    return value


@bp.get("/_matrix/client/v3/events")
@bp.get("/_matrix/client/r0/events")
async def get_events() -> Response:
    """GET /_matrix/client/v3/events"""
    requester = await authenticate(services(), allow_guest=True)
    timeout = _non_negative("timeout", 0)
    _non_negative("limit", DEFAULT_LIMIT)  # validated as Synapse does; see sync.legacy
    room_id = request.args.get("room_id")
    if requester.is_guest and room_id is None:
        # guest_access.md: guests may use /events "as used for room previews" only.
        raise MatrixError(Errcode.GUEST_ACCESS_FORBIDDEN, "Guests must name a room_id")
    body = await _service().events(requester.user_id, request.args.get("from"), timeout, room_id)
    return jsonify(body)


@bp.get("/_matrix/client/v3/initialSync")
async def get_initial_sync() -> Response:
    """GET /_matrix/client/v3/initialSync"""
    requester = await authenticate(services())
    limit = _non_negative("limit", DEFAULT_LIMIT)
    archived = bool_arg("archived")
    return jsonify(await _service().initial_sync(requester.user_id, limit, archived))


@bp.get("/_matrix/client/v3/rooms/<room_id>/initialSync")
async def get_room_initial_sync(room_id: str) -> Response:
    """GET /_matrix/client/v3/rooms/{roomId}/initialSync"""
    requester = await authenticate(services(), allow_guest=True)
    limit = _non_negative("limit", DEFAULT_LIMIT)
    body = await _service().room_initial_sync(
        requester.user_id, requester.device_id, room_id, limit
    )
    return jsonify(body)


@bp.get("/_matrix/client/v3/events/<event_id>")
async def get_event(event_id: str) -> Response:
    """GET /_matrix/client/v3/events/{eventId}"""
    requester = await authenticate(services())
    return jsonify(await _service().event(requester.user_id, requester.device_id, event_id))
