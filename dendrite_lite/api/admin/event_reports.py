"""Synapse-compatible admin API for event reports: GET /_synapse/admin/v1/event_reports
(Synapse's docs/admin_api/event_reports.md: newest first, `from`/`limit`, `next_token`,
`total`), so existing moderation tools see what users reported. Server admins only."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.client.query_args import int_arg

__all__ = ["bp"]

bp = Blueprint("synapse_admin_event_reports", __name__)


@bp.get("/_synapse/admin/v1/event_reports")
async def list_event_reports() -> Response:
    """GET /_synapse/admin/v1/event_reports"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.reports.event_reports(int_arg("from", 0), int_arg("limit", 100)))
