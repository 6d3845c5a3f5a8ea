"""Federation API: OpenID user info (server-server openid.yaml). Not signed: the caller is the
third party the user gave a token to, not a homeserver."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services

__all__ = ["bp"]

bp = Blueprint("federation_openid", __name__)


@bp.get("/_matrix/federation/v1/openid/userinfo")
async def userinfo() -> Response:
    """GET /_matrix/federation/v1/openid/userinfo"""
    return jsonify(await services().openid.userinfo(_token()))


def _token() -> str | None:
    """The spec's `access_token` query parameter, else an `Authorization: Bearer` token: third
    parties (and SyTest run with --hs-token-header) send it the way the client API does now."""
    token = request.args.get("access_token")
    if token:
        return token
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
