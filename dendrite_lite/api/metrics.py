"""GET /metrics: this server's Prometheus metrics (metrics.py), when [metrics] enables them.

server.py mounts it on the client listener (metrics.address = "") or alone on a listener of its
own, never on the federation listener.
"""

from __future__ import annotations

from quart import Blueprint, Quart, Response, request

from dendrite_lite.api.app import Services, create_app, services
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.metrics import CONTENT_TYPE, ROUTE_SCOPE_KEY

__all__ = ["bp", "build_metrics_app", "note_route"]

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
async def metrics() -> Response:
    """GET /metrics (the Prometheus text format)."""
    recorder = services().metrics
    if recorder is None:  # mounted by a Config built in code without [metrics] enabled
        raise MatrixError(Errcode.UNRECOGNIZED, "Metrics are not enabled", status=404)
    return Response(await recorder.exposition(), content_type=CONTENT_TYPE)


async def note_route() -> None:
    """A first before_request hook of every app with metrics: the matched URL rule (never the
    raw path: one label value per route), left in the ASGI scope for AccessLog's `on_response`."""
    rule = request.url_rule
    if rule is not None:
        request.scope[ROUTE_SCOPE_KEY] = rule.rule


def build_metrics_app(svc: Services) -> Quart:
    """The app of the metrics' own listener (metrics.address): /metrics and nothing else."""
    return create_app(svc, (bp,), name="dendrite_lite.metrics", first=(note_route,))
