"""Client-server API: profiles (profile.yaml)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import access_token, authenticate
from dendrite_lite.api.errors import json_body
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.users import profile

__all__ = ["bp"]

bp = Blueprint("client_profile", __name__)

_PROFILE = "/_matrix/client/v3/profile/<user_id>"


@bp.get(_PROFILE)
async def get_profile(user_id: str) -> Response:
    """GET /_matrix/client/v3/profile/{userId}"""
    return jsonify((await _lookup(user_id)).to_json())


@bp.get(f"{_PROFILE}/<key>")
async def get_profile_field(user_id: str, key: str) -> Response:
    """GET /_matrix/client/v3/profile/{userId}/{keyName}"""
    return jsonify(profile.profile_field(await _lookup(user_id), key))


async def _lookup(user_id: str) -> profile.Profile:
    svc = services()
    # profile.yaml asks no access token for these GETs; when one is sent it is checked, and the
    # requester's rooms let a remote profile fall back on a shared room's member event.
    requester = await authenticate(svc, allow_guest=True) if access_token() is not None else None
    return await profile.lookup_profile(
        svc.storage, user_id, server_name=svc.config.server.server_name,
        requester=requester.user_id if requester is not None else None,
        remote=svc.remote_profiles,
    )


@bp.put(f"{_PROFILE}/<key>")
async def put_profile_field(user_id: str, key: str) -> Response:
    """PUT /_matrix/client/v3/profile/{userId}/{keyName}"""
    svc = services()
    requester = await authenticate(svc, allow_guest=key == "displayname")
    body = await json_body()
    if key not in body:
        raise MatrixError(Errcode.MISSING_PARAM, f"The body must contain {key!r}")
    await profile.set_profile_field(
        svc.storage, svc.pipeline, requester=requester.user_id, user_id=user_id,
        key=key, value=body[key],
        # NOTSPEC: an application service may set any avatar_url on its puppets, as Synapse
        # lets it (SyTest's "AS can set avatar for ghosted users" sets an http:// one).
        any_avatar_url=requester.app_service is not None,
    )
    return jsonify({})


@bp.delete(f"{_PROFILE}/<key>")
async def delete_profile_field(user_id: str, key: str) -> Response:
    """DELETE /_matrix/client/v3/profile/{userId}/{keyName}"""
    svc = services()
    requester = await authenticate(svc, allow_guest=key == "displayname")
    await profile.set_profile_field(
        svc.storage, svc.pipeline, requester=requester.user_id, user_id=user_id,
        key=key, value=None,
    )
    return jsonify({})
