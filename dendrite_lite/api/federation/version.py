"""Federation API: server implementation name and version (data/api/server-server/version.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite import __version__

__all__ = ["bp"]

bp = Blueprint("federation_version", __name__)


@bp.get("/_matrix/federation/v1/version")
async def get_version() -> Response:
    """GET /_matrix/federation/v1/version"""
    return jsonify({"server": {"name": "dendrite-lite", "version": __version__}})
