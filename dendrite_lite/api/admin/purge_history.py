"""Synapse-compatible admin API for purging room history (Synapse's
docs/admin_api/purge_history_api.md): start a purge, then watch its status."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.request_body import optional_field

__all__ = ["bp"]

bp = Blueprint("synapse_admin_purge_history", __name__)


@bp.post("/_synapse/admin/v1/purge_history/<room_id>")
@bp.post("/_synapse/admin/v1/purge_history/<room_id>/<event_id>")
async def purge_history(room_id: str, event_id: str | None = None) -> Response:
    """POST /_synapse/admin/v1/purge_history/{roomId}[/{eventId}]"""
    svc = services()
    await require_admin(svc)
    body = await json_body(allow_empty=True)
    purge_id = await svc.history_purges.start(
        room_id,
        event_id=event_id or optional_field(body, "purge_up_to_event_id", "string"),
        ts=optional_field(body, "purge_up_to_ts", "integer"),
        delete_local_events=bool(
            optional_field(body, "delete_local_events", "boolean")
        ),
    )
    return jsonify({"purge_id": purge_id})


@bp.get("/_synapse/admin/v1/purge_history_status/<purge_id>")
async def purge_status(purge_id: str) -> Response:
    """GET /_synapse/admin/v1/purge_history_status/{purgeId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(svc.history_purges.status(purge_id))
