"""Liveness probe for load balancers, systemd watchdogs and `doctor` (not part of the Matrix spec)."""

from __future__ import annotations

from quart import Blueprint, Response

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/health")
async def get_health() -> Response:
    """GET /health"""
    return Response("OK", content_type="text/plain; charset=utf-8")
