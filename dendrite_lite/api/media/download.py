"""Downloads and thumbnails (authed-content-repo.yaml; content-repo.yaml, deprecated).

The authenticated endpoints (/_matrix/client/v1/media/...) need an access token (401
M_MISSING_TOKEN without one) and serve all media. The legacy ones (/_matrix/media/v3 and r0)
need none and serve only media stored before media.freeze_unauthenticated was turned on
(404 for the rest). Both are thin: the service finds the file, responses.py sends it.
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.client.query_args import bool_arg, int_arg
from dendrite_lite.api.media.responses import add_media_headers, file_response

__all__ = ["bp"]

bp = Blueprint("media_download", __name__)
bp.after_request(add_media_headers)

_LEGACY = ("/_matrix/media/v3", "/_matrix/media/r0")


@bp.get("/_matrix/client/v1/media/download/<server_name>/<media_id>")
@bp.get("/_matrix/client/v1/media/download/<server_name>/<media_id>/<file_name>")
async def download(server_name: str, media_id: str, file_name: str | None = None) -> Response:
    """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}"""
    requester = await authenticate(services(), allow_guest=True)
    # Synapse's escape hatch for server admins (media_admin_api.md), ignored for anyone else.
    bypass = requester.is_admin and bool_arg("admin_unsafely_bypass_quarantine")
    return await _download(
        server_name, media_id, file_name, authenticated=True, bypass_quarantine=bypass
    )


async def legacy_download(server_name: str, media_id: str, file_name: str | None = None) -> Response:
    """GET /_matrix/media/v3/download/{serverName}/{mediaId}"""
    return await _download(server_name, media_id, file_name, authenticated=False)


@bp.get("/_matrix/client/v1/media/thumbnail/<server_name>/<media_id>")
async def thumbnail(server_name: str, media_id: str) -> Response:
    """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"""
    await authenticate(services(), allow_guest=True)
    return await _thumbnail(server_name, media_id, authenticated=True)


async def legacy_thumbnail(server_name: str, media_id: str) -> Response:
    """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}"""
    return await _thumbnail(server_name, media_id, authenticated=False)


@bp.get("/_matrix/client/v1/media/config")
async def config() -> Response:
    """GET /_matrix/client/v1/media/config"""
    svc = services()
    await authenticate(svc)  # the legacy /config needs a token too (content-repo.yaml)
    return jsonify(svc.media.config())


for _prefix in _LEGACY:
    bp.add_url_rule(f"{_prefix}/download/<server_name>/<media_id>", view_func=legacy_download)
    bp.add_url_rule(
        f"{_prefix}/download/<server_name>/<media_id>/<file_name>", view_func=legacy_download
    )
    bp.add_url_rule(f"{_prefix}/thumbnail/<server_name>/<media_id>", view_func=legacy_thumbnail)
    bp.add_url_rule(f"{_prefix}/config", view_func=config)


async def _download(
    server_name: str, media_id: str, file_name: str | None, *, authenticated: bool,
    bypass_quarantine: bool = False,
) -> Response:
    media = await services().media.download(
        server_name, media_id, authenticated=authenticated, timeout_ms=_timeout_ms(),
        file_name=file_name, allow_remote=_allow_remote(authenticated),
        bypass_quarantine=bypass_quarantine,
    )
    return await file_response(media)


async def _thumbnail(server_name: str, media_id: str, *, authenticated: bool) -> Response:
    media = await services().media.thumbnail(
        server_name, media_id, int_arg("width"), int_arg("height"),
        request.args.get("method", "scale"), animated=bool_arg("animated"),
        authenticated=authenticated, timeout_ms=_timeout_ms(),
        allow_remote=_allow_remote(authenticated),
    )
    return await file_response(media)


def _timeout_ms() -> int | None:
    return int_arg("timeout_ms") if "timeout_ms" in request.args else None


def _allow_remote(authenticated: bool) -> bool:
    # content-repo.yaml allow_remote (legacy endpoints only): "false" asks us not to fetch
    # another server's media; what is cached already is still served.
    return authenticated or bool_arg("allow_remote", default=True)
