"""Client-server API: spec versions (data/api/client-server/versions.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.spec_versions import SUPPORTED_VERSIONS

__all__ = ["bp"]

bp = Blueprint("client_versions", __name__)


@bp.get("/_matrix/client/versions")
async def get_versions() -> Response:
    """GET /_matrix/client/versions"""
    return jsonify({"versions": list(SUPPORTED_VERSIONS), "unstable_features": {}})
