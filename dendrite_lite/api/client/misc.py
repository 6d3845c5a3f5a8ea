"""Client-server API: endpoints clients call at start that this server answers trivially.

- GET /voip/turnServer (voip.yaml). No TURN server is configured (the config has no [turn]
  section yet), so the answer is 200 `{}`, as Synapse and Dendrite give. NOTSPEC: the schema
  requires username/password/uris/ttl, but `{}` is what clients meet in practice: matrix-js-sdk
  skips a response without `uris`, while a valid-looking one with `uris: []` would be handed to
  RTCPeerConnection, which rejects an ICE server with no URLs; an error status makes
  matrix-js-sdk log a failure and retry.
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate

__all__ = ["bp"]

bp = Blueprint("client_misc", __name__)


@bp.get("/_matrix/client/v3/voip/turnServer")
async def turn_server() -> Response:
    """GET /_matrix/client/v3/voip/turnServer"""
    await authenticate(services())
    # TODO(turn): a [turn] config section (uris, shared_secret, user_lifetime) and coturn's
    # time-limited HMAC-SHA1 credentials ("use-auth-secret").
    return jsonify({})
