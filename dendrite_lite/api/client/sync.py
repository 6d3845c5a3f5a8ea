"""Client-server API: GET /sync (sync.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.sync.service import SyncRequest

__all__ = ["bp"]

bp = Blueprint("client_sync", __name__)

_PRESENCE = ("offline", "online", "unavailable")


def _timeout_ms(value: str | None) -> int:
    if value is None:
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        raise MatrixError(Errcode.INVALID_PARAM, "timeout must be an integer") from None


@bp.get("/_matrix/client/v3/sync")
async def get_sync() -> Response:
    """GET /_matrix/client/v3/sync"""
    svc = services()
    requester = await authenticate(svc, allow_guest=True)
    args = request.args
    set_presence = args.get("set_presence")
    if set_presence is not None and set_presence not in _PRESENCE:
        raise MatrixError(Errcode.INVALID_PARAM, f"set_presence must be one of {_PRESENCE}")
    full_state = args.get("full_state", "false")
    if full_state not in ("true", "false"):
        raise MatrixError(Errcode.INVALID_PARAM, "full_state must be true or false")
    body = await svc.sync.sync(
        SyncRequest(
            user_id=requester.user_id,
            device_id=requester.device_id,
            since=args.get("since"),
            filter=args.get("filter"),
            full_state=full_state == "true",
            timeout_ms=_timeout_ms(args.get("timeout")),
            set_presence=set_presence,
        )
    )
    return jsonify(body)
