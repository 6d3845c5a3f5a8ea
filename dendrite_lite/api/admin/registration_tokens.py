"""Synapse-compatible admin API for registration tokens: /_synapse/admin/v1/registration_tokens.

Follows Synapse's docs/usage/administration/admin_api/registration_tokens.md (list, get, create,
delete), so existing admin tools can hand out invitations. Callers need a server admin's access
token. `pending` is always 0: a use is only counted when an account is created.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.app import services
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import registration_tokens as tokens
from dendrite_lite.users.sessions import now_ms

__all__ = ["bp"]

bp = Blueprint("synapse_admin_registration_tokens", __name__)

_PREFIX = "/_synapse/admin/v1/registration_tokens"


def _token_json(token: tokens.RegistrationToken) -> dict[str, Any]:
    return {
        "token": token.token,
        "uses_allowed": token.uses_allowed,
        "pending": 0,
        "completed": token.completed,
        "expiry_time": token.expiry_ts,
    }


@bp.get(_PREFIX)
async def list_tokens() -> Response:
    """GET /_synapse/admin/v1/registration_tokens"""
    svc = services()
    await require_admin(svc)
    found = await tokens.list_tokens(svc.storage)
    valid = request.args.get("valid")
    if valid in ("true", "false"):
        now = now_ms()
        found = [t for t in found if t.is_valid(now) == (valid == "true")]
    return jsonify({"registration_tokens": [_token_json(t) for t in found]})


@bp.get(f"{_PREFIX}/<token>")
async def get_token(token: str) -> Response:
    """GET /_synapse/admin/v1/registration_tokens/{token}"""
    svc = services()
    await require_admin(svc)
    found = await tokens.get_token(svc.storage, token)
    if found is None:
        raise MatrixError(Errcode.NOT_FOUND, "No such registration token")
    return jsonify(_token_json(found))


@bp.post(f"{_PREFIX}/new")
async def new_token() -> Response:
    """POST /_synapse/admin/v1/registration_tokens/new"""
    svc = services()
    await require_admin(svc)
    body = await json_body(allow_empty=True)
    created = await tokens.create_token(
        svc.storage,
        now=now_ms(),
        token=body.get("token"),
        uses_allowed=body.get("uses_allowed"),
        expiry_ts=body.get("expiry_time"),
    )
    return jsonify(_token_json(created))


@bp.delete(f"{_PREFIX}/<token>")
async def delete_token(token: str) -> Response:
    """DELETE /_synapse/admin/v1/registration_tokens/{token}"""
    svc = services()
    await require_admin(svc)
    if not await tokens.delete_token(svc.storage, token):
        raise MatrixError(Errcode.NOT_FOUND, "No such registration token")
    return jsonify({})
