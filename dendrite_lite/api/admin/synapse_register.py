"""Synapse-compatible shared-secret registration: /_synapse/admin/v1/register.

Documented in Synapse's docs/admin_api/register_api.md: GET hands out a nonce; POST creates the
user when `mac` = HMAC-SHA1(registration.shared_secret, nonce NUL username NUL password NUL
"admin"|"notadmin" [NUL user_type]). Synapse's `register_new_matrix_user` script and other
tools use it to create the first admin on a server with registration closed.
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.users.registration import register_with_shared_secret

__all__ = ["bp"]

bp = Blueprint("synapse_admin_register", __name__)


@bp.get("/_synapse/admin/v1/register")
async def get_nonce() -> Response:
    """GET /_synapse/admin/v1/register"""
    return jsonify({"nonce": services().registration_nonces.new()})


@bp.post("/_synapse/admin/v1/register")
async def post_register() -> Response:
    """POST /_synapse/admin/v1/register"""
    svc = services()
    body = await json_body()
    session = await register_with_shared_secret(
        svc.storage, svc.config, svc.registration_nonces, body
    )
    return jsonify(session.to_json())
