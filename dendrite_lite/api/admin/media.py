"""Synapse-compatible admin API for media (Synapse's docs/admin_api/media_admin_api.md and the
media sections of user_admin_api.md and statistics.md): list, quarantine, protect, inspect and
delete media, purge cached copies of other servers' media, and each user's usage, so existing admin tools (synadm) work. Server
admins only; the work is media/admin.py's, which the `dendrite-lite media` commands share.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.admin import require_admin
from dendrite_lite.api.admin.paging import (
    backwards_arg,
    non_negative_arg,
    order_by_arg,
    paged,
)
from dendrite_lite.api.app import Services, services
from dendrite_lite.api.client.query_args import bool_arg
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.admin import (
    MEDIA_ORDER_COLUMNS,
    USAGE_ORDER_COLUMNS,
    AdminMedia,
    MediaAdmin,
    UsageQuery,
)
from dendrite_lite.media.names import check_mxc

__all__ = ["bp"]

bp = Blueprint("synapse_admin_media", __name__)

_V1 = "/_synapse/admin/v1"


def _admin(svc: Services) -> MediaAdmin:
    # Stateless over the media repository: built per request, like the CLI builds it.
    return MediaAdmin(svc.media.repo, svc.config.server.server_name)


# Who quarantined media, when no user did (see _user_media_json).
_UNNAMED_QUARANTINER = "dendrite-lite"


def _quarantined_by(requester_id: str) -> str | None:
    # The admin socket's requester is nobody in particular.
    return requester_id or None


def _order() -> tuple[str, bool]:
    """`order_by` and whether `dir` is backwards; neither given: newest first, as Synapse."""
    if "order_by" not in request.args and "dir" not in request.args:
        return "created_ts", True
    return order_by_arg(MEDIA_ORDER_COLUMNS, "created_ts"), backwards_arg()


def _user_media_json(m: AdminMedia) -> dict[str, Any]:
    return {
        "media_id": m.media_id,
        "media_type": m.content_type,
        "media_length": m.size,
        "upload_name": m.upload_name,
        "created_ts": m.created_ts,
        "last_access_ts": m.last_access_ts,
        # Tools take a non-null quarantined_by for "quarantined"; a quarantine from the admin
        # socket or the CLI names no user, so the server stands in.
        "quarantined_by": (m.quarantined_by or _UNNAMED_QUARANTINER)
        if m.quarantined
        else None,
        "safe_from_quarantine": m.protected,
        "authenticated": m.authenticated,
        "quarantined": m.quarantined,  # ours
    }


@bp.get(f"{_V1}/users/<user_id>/media")
async def list_user_media(user_id: str) -> Response:
    """GET /_synapse/admin/v1/users/{userId}/media"""
    svc = services()
    await require_admin(svc)
    offset, limit = non_negative_arg("from", 0), non_negative_arg("limit", 100)
    order_by, backwards = _order()
    page = await _admin(svc).user_media(
        user_id, order_by=order_by, backwards=backwards, offset=offset, limit=limit
    )
    body = {"media": [_user_media_json(m) for m in page.media], "total": page.total}
    return jsonify(paged(body, offset, len(page.media), page.total))


@bp.delete(f"{_V1}/users/<user_id>/media")
async def delete_user_media(user_id: str) -> Response:
    """DELETE /_synapse/admin/v1/users/{userId}/media"""
    svc = services()
    await require_admin(svc)
    order_by, backwards = _order()
    deleted = await _admin(svc).delete_user_media(
        user_id,
        order_by=order_by,
        backwards=backwards,
        limit=non_negative_arg("limit", 100),
    )
    return jsonify({"deleted_media": deleted, "total": len(deleted)})


@bp.post(f"{_V1}/user/<user_id>/media/quarantine")
async def quarantine_user_media(user_id: str) -> Response:
    """POST /_synapse/admin/v1/user/{userId}/media/quarantine"""
    svc = services()
    requester = await require_admin(svc)
    count = await _admin(svc).quarantine_user_media(
        user_id, _quarantined_by(requester.user_id)
    )
    return jsonify({"num_quarantined": count})


@bp.get(f"{_V1}/room/<room_id>/media")
async def list_room_media(room_id: str) -> Response:
    """GET /_synapse/admin/v1/room/{roomId}/media"""
    svc = services()
    await require_admin(svc)
    local, remote = await _admin(svc).room_media(room_id)
    return jsonify({"local": local, "remote": remote})


# The second path is Synapse's deprecated one for the same operation.
@bp.post(f"{_V1}/room/<room_id>/media/quarantine")
@bp.post(f"{_V1}/quarantine_media/<room_id>")
async def quarantine_room_media(room_id: str) -> Response:
    """POST /_synapse/admin/v1/room/{roomId}/media/quarantine"""
    svc = services()
    requester = await require_admin(svc)
    count = await _admin(svc).quarantine_room_media(
        room_id, _quarantined_by(requester.user_id)
    )
    return jsonify({"num_quarantined": count})


async def _set_quarantined(
    server_name: str, media_id: str, quarantined: bool
) -> Response:
    svc = services()
    requester = await require_admin(svc)
    check_mxc(server_name, media_id)
    by = _quarantined_by(requester.user_id)
    if not await _admin(svc).set_quarantined(server_name, media_id, quarantined, by):
        raise MatrixError(Errcode.NOT_FOUND, "Unknown media")
    return jsonify({})


@bp.post(f"{_V1}/media/quarantine/<server_name>/<media_id>")
async def quarantine_media(server_name: str, media_id: str) -> Response:
    """POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}"""
    return await _set_quarantined(server_name, media_id, True)


@bp.post(f"{_V1}/media/unquarantine/<server_name>/<media_id>")
async def unquarantine_media(server_name: str, media_id: str) -> Response:
    """POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}"""
    return await _set_quarantined(server_name, media_id, False)


async def _set_protected(media_id: str, protected: bool) -> Response:
    svc = services()
    await require_admin(svc)
    if not await _admin(svc).set_protected(media_id, protected):
        raise MatrixError(Errcode.NOT_FOUND, "Unknown media")
    return jsonify({})


@bp.post(f"{_V1}/media/protect/<media_id>")
async def protect_media(media_id: str) -> Response:
    """POST /_synapse/admin/v1/media/protect/{mediaId}"""
    return await _set_protected(media_id, True)


@bp.post(f"{_V1}/media/unprotect/<media_id>")
async def unprotect_media(media_id: str) -> Response:
    """POST /_synapse/admin/v1/media/unprotect/{mediaId}"""
    return await _set_protected(media_id, False)


@bp.get(f"{_V1}/media/<server_name>/<media_id>")
async def media_info(server_name: str, media_id: str) -> Response:
    """GET /_synapse/admin/v1/media/{serverName}/{mediaId}"""
    svc = services()
    await require_admin(svc)
    check_mxc(server_name, media_id)
    m = await _admin(svc).info(server_name, media_id)
    if m is None:
        raise MatrixError(Errcode.NOT_FOUND, "Unknown media")
    info = _user_media_json(m) | {
        "media_origin": m.server_name,
        "user_id": m.user_id,
        "sha256": m.sha256,
        # Synapse's file name on disk; ours is the content's hash.
        "filesystem_id": m.sha256,
        "url_cache": None,
    }
    return jsonify({"media_info": info})


@bp.delete(f"{_V1}/media/<server_name>/<media_id>")
async def delete_media(server_name: str, media_id: str) -> Response:
    """DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}"""
    svc = services()
    await require_admin(svc)
    check_mxc(server_name, media_id)
    if server_name != svc.config.server.server_name:
        raise MatrixError(Errcode.INVALID_PARAM, "Can only delete local media")
    if not await _admin(svc).delete(server_name, media_id):
        raise MatrixError(Errcode.NOT_FOUND, "Unknown media")
    return jsonify({"deleted_media": [media_id], "total": 1})


@bp.post(f"{_V1}/media/delete")
@bp.post(f"{_V1}/media/<server_name>/delete")  # Synapse's deprecated path
async def delete_old_media(server_name: str | None = None) -> Response:
    """POST /_synapse/admin/v1/media/delete"""
    svc = services()
    await require_admin(svc)
    if server_name not in (None, svc.config.server.server_name):
        raise MatrixError(Errcode.INVALID_PARAM, "Can only delete local media")
    deleted = await _admin(svc).delete_local_before(
        non_negative_arg("before_ts"),
        size_gt=non_negative_arg("size_gt", 0),
        keep_profiles=bool_arg("keep_profiles", default=True),
    )
    return jsonify({"deleted_media": deleted, "total": len(deleted)})


@bp.post(f"{_V1}/purge_media_cache")
async def purge_media_cache() -> Response:
    """POST /_synapse/admin/v1/purge_media_cache"""
    svc = services()
    await require_admin(svc)
    result = await _admin(svc).purge_remote(non_negative_arg("before_ts"))
    return jsonify({"deleted": result.media})


@bp.get(f"{_V1}/statistics/users/media")
async def users_media_usage() -> Response:
    """GET /_synapse/admin/v1/statistics/users/media"""
    svc = services()
    await require_admin(svc)
    offset = non_negative_arg("from", 0)
    query = UsageQuery(
        order_by=order_by_arg(USAGE_ORDER_COLUMNS, "user_id"),
        backwards=backwards_arg(),
        from_ts=non_negative_arg("from_ts", 0),
        until_ts=non_negative_arg("until_ts") if "until_ts" in request.args else None,
        search=request.args.get("search_term") or None,
    )
    users, total = await _admin(svc).users_usage(
        query, offset=offset, limit=non_negative_arg("limit", 100)
    )
    body = {"users": [asdict(u) for u in users], "total": total}
    return jsonify(paged(body, offset, len(users), total))
