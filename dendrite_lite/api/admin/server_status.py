"""dendrite-lite's own admin endpoints for `dendrite-lite tui`: the dashboard's status and the
live tail of the server's log (server_status.py). Server admins only, like every admin API."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.client.query_args import int_arg
from dendrite_lite.errors import Errcode, MatrixError

__all__ = ["bp"]

bp = Blueprint("dendrite_lite_admin_status", __name__)


@bp.get("/_dendrite_lite/admin/v1/status")
async def get_status() -> Response:
    """GET /_dendrite_lite/admin/v1/status"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.server_status.snapshot())


@bp.get("/_dendrite_lite/admin/v1/logs")
async def get_logs() -> Response:
    """GET /_dendrite_lite/admin/v1/logs?after=N"""
    svc = services()
    await require_admin(svc)
    after = int_arg("after", 0)
    if after < 0:
        raise MatrixError(Errcode.INVALID_PARAM, "after must be 0 or more")
    return jsonify(svc.server_status.log_lines(after))
