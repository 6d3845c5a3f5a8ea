"""Uploads (content-repo.yaml): POST /upload, POST /create, PUT /upload/{serverName}/{mediaId}.

The body is handed to the service as the stream Quart receives it (`request.body`), never read
whole: it goes to a temporary file block by block. Its size limit is media.max_upload_bytes
(api/limits.py): a larger declared Content-Length is 413 before the handler runs; a chunked body
that grows past it is cut off by the store with the same 413.
"""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.auth import authenticate
from dendrite_lite.api.media.responses import add_media_headers

__all__ = ["bp"]

bp = Blueprint("media_upload", __name__)
bp.after_request(add_media_headers)


@bp.post("/_matrix/media/v3/upload")
@bp.post("/_matrix/media/r0/upload")
async def upload() -> Response:
    """POST /_matrix/media/v3/upload"""
    svc = services()
    requester = await authenticate(svc)
    mxc = await svc.media.upload(
        requester.user_id, request.body, content_type=request.headers.get("Content-Type"),
        file_name=request.args.get("filename"),
    )
    return jsonify({"content_uri": mxc})


@bp.post("/_matrix/media/v1/create")
async def create() -> Response:
    """POST /_matrix/media/v1/create"""
    svc = services()
    requester = await authenticate(svc)
    return jsonify(await svc.media.create(requester.user_id))


@bp.put("/_matrix/media/v3/upload/<server_name>/<media_id>")
async def upload_to(server_name: str, media_id: str) -> Response:
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"""
    svc = services()
    requester = await authenticate(svc)
    await svc.media.upload_to(
        requester.user_id, server_name, media_id, request.body,
        content_type=request.headers.get("Content-Type"), file_name=request.args.get("filename"),
    )
    return jsonify({})
