"""Client-server API: endpoints clients call at start that this server answers trivially.

- GET /voip/turnServer (voip.yaml): credentials for the [turn] server (turn_credentials.py).
  With none configured the answer is 200 `{}`, as Synapse and Dendrite give. NOTSPEC: the
  schema requires username/password/uris/ttl, but `{}` is what clients meet in practice:
  matrix-js-sdk skips a response without `uris`, while a valid-looking one with `uris: []`
  would be handed to RTCPeerConnection, which rejects an ICE server with no URLs; an error
  status makes matrix-js-sdk log a failure and retry. Guests get credentials when
  turn.allow_guests (as Synapse's turn_allow_guests), else 403 M_GUEST_ACCESS_FORBIDDEN.
"""

from __future__ import annotations

import time

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.turn_credentials import turn_credentials

__all__ = ["bp"]

bp = Blueprint("client_misc", __name__)


@bp.get("/_matrix/client/v3/voip/turnServer")
async def turn_server() -> Response:
    """GET /_matrix/client/v3/voip/turnServer"""
    svc = services()
    turn = svc.config.turn
    requester = await authenticate(svc, allow_guest=turn.allow_guests)
    return jsonify(turn_credentials(turn, requester.user_id, time.time()) or {})
