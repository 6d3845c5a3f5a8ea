"""Admin API about the server itself: Synapse's server_version (docs/admin_api/version_api.md)
and background updates switch (docs/usage/administration/admin_api/background_updates.md; we
have no background updates, see jobs.py), and our own list of periodic jobs. Server admins only.
"""

from __future__ import annotations

import platform
from dataclasses import asdict

from quart import Blueprint, Response, jsonify

from dendrite_lite import __version__
from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.jobs import list_jobs

__all__ = ["bp"]

bp = Blueprint("admin_server_info", __name__)

_UPDATES = "/_synapse/admin/v1/background_updates"


@bp.get("/_synapse/admin/v1/server_version")
async def server_version() -> Response:
    """GET /_synapse/admin/v1/server_version"""
    await require_admin(services())
    return jsonify(
        {
            "server_version": __version__,
            "server": "dendrite-lite",
            "python_version": platform.python_version(),
        }
    )


@bp.get(f"{_UPDATES}/status")
async def background_updates_status() -> Response:
    """GET /_synapse/admin/v1/background_updates/status"""
    svc = services()
    await require_admin(svc)
    # Keyed by database in Synapse; nothing runs in ours.
    return jsonify({"enabled": svc.background_updates.enabled, "current_updates": {}})


@bp.get(f"{_UPDATES}/enabled")
async def background_updates_enabled() -> Response:
    """GET /_synapse/admin/v1/background_updates/enabled"""
    svc = services()
    await require_admin(svc)
    return jsonify({"enabled": svc.background_updates.enabled})


@bp.post(f"{_UPDATES}/enabled")
async def set_background_updates_enabled() -> Response:
    """POST /_synapse/admin/v1/background_updates/enabled"""
    svc = services()
    await require_admin(svc)
    body = await json_body()
    if "enabled" not in body:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing 'enabled'")
    enabled = body["enabled"]
    if not isinstance(enabled, bool):
        raise MatrixError(Errcode.INVALID_PARAM, "'enabled' must be true or false")
    svc.background_updates.enabled = enabled
    return jsonify({"enabled": enabled})


# Synapse's jobs an admin may start by hand. Both rebuild tables Synapse keeps on the side; ours
# are read live from the room state (room stats, the user directory), so neither has work to do.
_STARTABLE_JOBS = ("populate_stats_process_rooms", "regenerate_directory")


@bp.post(f"{_UPDATES}/start_job")
async def start_background_job() -> Response:
    """POST /_synapse/admin/v1/background_updates/start_job"""
    svc = services()
    await require_admin(svc)
    job_name = (await json_body()).get("job_name")
    if job_name is None:
        raise MatrixError(Errcode.MISSING_PARAM, "Missing 'job_name'")
    if job_name not in _STARTABLE_JOBS:
        raise MatrixError(Errcode.INVALID_PARAM, f"Unknown job_name {job_name!r}")
    return jsonify({})


@bp.get("/_dendrite_lite/admin/v1/jobs")
async def jobs() -> Response:
    """GET /_dendrite_lite/admin/v1/jobs"""
    svc = services()
    await require_admin(svc)
    found = await list_jobs(
        config=svc.config,
        storage=svc.storage,
        presence=svc.presence,
        backups=svc.backups,
        media_retention=svc.media_retention,
        email_notifier=svc.email_notifier,
    )
    return jsonify({"jobs": [asdict(j) for j in found]})
