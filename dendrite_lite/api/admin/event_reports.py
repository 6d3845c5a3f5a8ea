"""Synapse-compatible admin API for event reports (Synapse's docs/admin_api/event_reports.md):
the list (newest first unless dir=f, `from`/`limit`, `next_token`, `total`, filtered by
reporter, room or the reported event's sender), one report with the reported event, and
dismissing one, so existing moderation tools see and handle what users reported. Server admins
only."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.admin.paging import MAX_SQL_INT, backwards_arg, non_negative_arg
from dendrite_lite.api.app import services
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage.reports import EventReportQuery

__all__ = ["bp"]

bp = Blueprint("synapse_admin_event_reports", __name__)


@bp.get("/_synapse/admin/v1/event_reports")
async def list_event_reports() -> Response:
    """GET /_synapse/admin/v1/event_reports"""
    svc = services()
    await require_admin(svc)
    query = EventReportQuery(
        backwards=backwards_arg(default=True),
        reporter=request.args.get("user_id"),
        room=request.args.get("room_id"),
        sender=request.args.get("sender_user_id") or request.args.get("event_sender_user_id"),
    )
    return jsonify(
        await svc.reports.event_reports(
            non_negative_arg("from", 0), non_negative_arg("limit", 100), query
        )
    )


def _report_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_SQL_INT:
        raise MatrixError(
            Errcode.INVALID_PARAM, "The report_id parameter must be a string of a positive integer"
        )
    return int(raw)


@bp.get("/_synapse/admin/v1/event_reports/<report_id>")
async def get_event_report(report_id: str) -> Response:
    """GET /_synapse/admin/v1/event_reports/{reportId}"""
    svc = services()
    await require_admin(svc)
    return jsonify(await svc.reports.event_report(_report_id(report_id)))


@bp.delete("/_synapse/admin/v1/event_reports/<report_id>")
async def dismiss_event_report(report_id: str) -> Response:
    """DELETE /_synapse/admin/v1/event_reports/{reportId}"""
    svc = services()
    await require_admin(svc)
    await svc.reports.dismiss_event_report(_report_id(report_id))
    return jsonify({})
