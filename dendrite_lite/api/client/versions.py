"""Client-server API: spec versions (data/api/client-server/versions.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.spec_versions import SUPPORTED_VERSIONS

__all__ = ["bp"]

bp = Blueprint("client_versions", __name__)


@bp.get("/_matrix/client/versions")
async def get_versions() -> Response:
    """GET /_matrix/client/versions"""
    # Clients probe unstable features here before using them.
    unstable = {
        "org.matrix.msc3814": True,  # dehydrated devices (api/client/dehydrated_devices.py)
        # Simplified sliding sync (api/client/sliding_sync.py): Element X needs it.
        "org.matrix.simplified_msc3575": True,
        # Thread subscriptions, MSC4306 with MSC4308's sliding sync extension and companion
        # endpoint (api/client/thread_subscriptions.py), as Synapse advertises them; Element X
        # turns the extension on when it sees this.
        "org.matrix.msc4306": True,
    }
    delayed = services().delayed_events
    if delayed is not None and delayed.enabled:  # MSC4140: matrix-js-sdk checks before using it
        unstable["org.matrix.msc4140"] = True
    return jsonify({"versions": list(SUPPORTED_VERSIONS), "unstable_features": unstable})
