"""Client-server API: server administration (data/api/client-server/admin.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.users import devices

__all__ = ["bp"]

bp = Blueprint("client_whois", __name__)


@bp.get("/_matrix/client/v3/admin/whois/<path:user_id>")
@bp.get("/_matrix/client/r0/admin/whois/<path:user_id>")
async def get_whois(user_id: str) -> Response:
    """GET /_matrix/client/v3/admin/whois/{userId}

    The spec lets a server restrict this to the user themselves or a server admin: it shows
    where and when each device was last used, which is nobody else's business.
    """
    svc = services()
    requester = await authenticate(svc)
    if not is_valid_user_id(user_id):
        raise MatrixError(Errcode.INVALID_PARAM, f"{user_id!r} is not a valid user id")
    if requester.user_id != user_id and not requester.is_admin:
        raise MatrixError(Errcode.FORBIDDEN, "Only a server admin may look up other users")
    if server_name_of(user_id) != svc.config.server.server_name:
        raise MatrixError(Errcode.INVALID_PARAM, "Only users of this server can be looked up")
    return jsonify({"user_id": user_id, "devices": await devices.whois(svc.storage, user_id)})
