"""Synapse-compatible admin API for federation destinations (Synapse's
docs/usage/administration/admin_api/federation.md): list, details, shared rooms and
reset_connection. Each destination carries Synapse's fields plus ours: last_success_ts,
last_failure_ts, last_error, next_retry_ts and queue_length (outbox rows still waiting).
Server admins only."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.admin.paging import (
    backwards_arg,
    non_negative_arg,
    order_by_arg,
    paged,
)
from dendrite_lite.api.app import Services, services
from dendrite_lite.federation.destination_admin import (
    DESTINATION_ORDERS,
    DestinationAdmin,
    failure_ts,
    retry_last_ts,
)
from dendrite_lite.federation.destinations import DestinationHealth

__all__ = ["bp"]

bp = Blueprint("synapse_admin_destinations", __name__)

_PREFIX = "/_synapse/admin/v1/federation/destinations"


def _admin(svc: Services) -> DestinationAdmin:
    return DestinationAdmin(
        svc.storage, svc.federation_sender, svc.config.server.server_name
    )


def _destination_json(h: DestinationHealth) -> dict[str, Any]:
    return {
        "destination": h.destination,
        "retry_last_ts": retry_last_ts(h),
        "retry_interval": h.retry_interval_ms,
        "failure_ts": failure_ts(h),
        "last_successful_stream_ordering": None,  # not tracked (see last_success_ts)
        "last_success_ts": h.last_success_ts,
        "last_failure_ts": h.last_failure_ts,
        "last_error": h.last_failure_reason,
        "next_retry_ts": h.next_retry_ts,
        "queue_length": h.pending,
    }


@bp.get(_PREFIX)
async def list_destinations() -> Response:
    """GET /_synapse/admin/v1/federation/destinations"""
    svc = services()
    await require_admin(svc)
    offset = non_negative_arg("from", 0)
    page = await _admin(svc).page(
        search=request.args.get("destination"),
        order_by=order_by_arg(DESTINATION_ORDERS, "destination"),
        backwards=backwards_arg(),
        offset=offset,
        limit=non_negative_arg("limit", 100),
    )
    body = {
        "destinations": [_destination_json(h) for h in page.destinations],
        "total": page.total,
    }
    return jsonify(
        paged(body, offset, len(page.destinations), page.total, string_token=True)
    )


@bp.get(f"{_PREFIX}/<destination>")
async def destination_details(destination: str) -> Response:
    """GET /_synapse/admin/v1/federation/destinations/{destination}"""
    svc = services()
    await require_admin(svc)
    return jsonify(_destination_json(await _admin(svc).details(destination)))


@bp.get(f"{_PREFIX}/<destination>/rooms")
async def destination_rooms(destination: str) -> Response:
    """GET /_synapse/admin/v1/federation/destinations/{destination}/rooms"""
    svc = services()
    await require_admin(svc)
    offset = non_negative_arg("from", 0)
    rooms, total = await _admin(svc).rooms(
        destination,
        backwards=backwards_arg(),
        offset=offset,
        limit=non_negative_arg("limit", 100),
    )
    body = {
        "rooms": [{"room_id": r, "stream_ordering": s} for r, s in rooms],
        "total": total,
    }
    return jsonify(paged(body, offset, len(rooms), total, string_token=True))


@bp.post(f"{_PREFIX}/<destination>/reset_connection")
async def reset_connection(destination: str) -> Response:
    """POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection"""
    svc = services()
    await require_admin(svc)
    await _admin(svc).reset_connection(destination)
    return jsonify({})
