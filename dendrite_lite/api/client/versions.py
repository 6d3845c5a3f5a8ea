"""Client-server API: spec versions (data/api/client-server/versions.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

__all__ = ["bp", "SUPPORTED_VERSIONS"]

bp = Blueprint("client_versions", __name__)

# r0.6.1 because some older clients and bots still look for it; v1.1+ are the stable versions whose
# endpoints this server targets.
SUPPORTED_VERSIONS: tuple[str, ...] = ("r0.6.1",) + tuple(f"v1.{minor}" for minor in range(1, 13))


@bp.get("/_matrix/client/versions")
async def get_versions() -> Response:
    """GET /_matrix/client/versions"""
    return jsonify({"versions": list(SUPPORTED_VERSIONS), "unstable_features": {}})
