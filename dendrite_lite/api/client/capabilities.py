"""Client-server API: capabilities (capabilities.yaml, client-server-api §Capabilities
negotiation)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from dendrite_lite.rooms.delayed_events import MAX_PER_USER
from dendrite_lite.users.profile import PROFILE_FIELDS

__all__ = ["bp", "capabilities"]

bp = Blueprint("client_capabilities", __name__)


def capabilities(
    default_room_version: str = DEFAULT_ROOM_VERSION.identifier,
    *,
    get_login_token: bool = False,
    threepid_changes: bool = False,
) -> dict[str, Any]:
    """`default_room_version`: what /createRoom uses when the body names none (config
    server.default_room_version), so clients offer it too; `get_login_token`: config
    login.get_token; `threepid_changes`: outgoing email is set up ([email]), so users can add
    email addresses."""
    return {
        "m.change_password": {"enabled": True},
        "m.room_versions": {
            "default": default_room_version,
            "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
        },
        "m.set_displayname": {"enabled": True},
        "m.set_avatar_url": {"enabled": True},
        "m.profile_fields": {"enabled": True, "allowed": list(PROFILE_FIELDS)},
        "m.3pid_changes": {"enabled": threepid_changes},
        "m.get_login_token": {"enabled": get_login_token},
        "m.forget_forced_upon_leave": {"enabled": False},
    }


@bp.get("/_matrix/client/v3/capabilities")
async def get_capabilities() -> Response:
    """GET /_matrix/client/v3/capabilities"""
    svc = services()
    await authenticate(svc, allow_guest=True)
    caps = capabilities(
        svc.config.server.default_room_version, get_login_token=svc.config.login.get_token,
        threepid_changes=svc.config.email.enabled,
    )
    if svc.delayed_events is not None:  # MSC4140's limits, as Synapse (0: turned off)
        caps["org.matrix.msc4140.delayed_events"] = {
            "max_delay_ms": svc.delayed_events.max_delay_ms, "max_scheduled": MAX_PER_USER,
        }
    return jsonify({"capabilities": caps})
