"""Client-server API: MSC4143 MatrixRTC transports (the calls SFU, config [calls])."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rtc_transports import rtc_transports

__all__ = ["bp"]

bp = Blueprint("client_matrixrtc", __name__)


@bp.get("/_matrix/client/unstable/org.matrix.msc4143/rtc/transports")
async def get_rtc_transports() -> Response:
    """GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports"""
    svc = services()
    transports = rtc_transports(svc.config.calls)
    if not transports:
        # As Synapse without msc4143_enabled: not served, so clients fall back to the well-known.
        raise MatrixError(Errcode.UNRECOGNIZED, "Unrecognized request")
    await authenticate(svc)
    return jsonify({"rtc_transports": transports})
