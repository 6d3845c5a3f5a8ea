"""Federation API: third-party invites (third_party_invite.yaml: /3pid/onbind from identity
servers, /exchange_third_party_invite/{roomId} from the invitee's server). The rules are
rooms/third_party_invites.py's."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.api.federation.auth import authenticated_origin

__all__ = ["bp"]

bp = Blueprint("federation_third_party_invites", __name__)

_V1 = "/_matrix/federation/v1"


@bp.put(f"{_V1}/3pid/onbind")
@bp.post(f"{_V1}/3pid/onbind")
async def onbind() -> Response:
    """PUT /_matrix/federation/v1/3pid/onbind

    Sent by identity servers, which have no X-Matrix key: the `signed` block of each invite is
    what proves it (checked against the keys in the room). POST too, as identity servers (Sydent,
    SyTest's) send it and Synapse serves it."""
    await services().third_party_invites.on_bind(await json_body())
    return jsonify({})


@bp.put(f"{_V1}/exchange_third_party_invite/<room_id>")
async def exchange_third_party_invite(room_id: str) -> Response:
    """PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}"""
    origin = await authenticated_origin()
    await services().third_party_invites.exchange(origin, room_id, await json_body())
    return jsonify({})
