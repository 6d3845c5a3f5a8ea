"""Our media for other servers (server-server content_repository.yaml, Matrix 1.11).

Both endpoints are X-Matrix authenticated and serve only our own media (a server asks the
origin, never us, for a third server's). The answer is multipart/mixed as the spec defines it:
a JSON part (`{}`, the metadata there is none of yet), then the file's bytes with its
Content-Type and Content-Disposition (the same disposition rule as the client endpoints). The
parts are framed here, streamed from disk block by block: werkzeug's multipart encoder is for
form-data (and its own documentation says tests only), and the frame is three header lines.
The boundary is a random hex string, so it appears in no header value and needs no quoting
(Synapse's reader splits the header at "boundary=" and takes the rest as it is).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

from quart import Blueprint, Response, request

from dendrite_lite.api.app import services
from dendrite_lite.api.client.query_args import bool_arg, int_arg
from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.api.media.responses import add_media_headers, content_disposition
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.service import MediaFile

__all__ = ["bp"]

bp = Blueprint("federation_media", __name__)
bp.after_request(add_media_headers)

_BLOCK = 256 * 1024


@bp.get("/_matrix/federation/v1/media/download/<media_id>")
async def download(media_id: str) -> Response:
    """GET /_matrix/federation/v1/media/download/{mediaId}"""
    await authenticated_origin()
    svc = services()
    media = await svc.media.download(
        svc.config.server.server_name, media_id, authenticated=True, timeout_ms=_timeout_ms(),
        allow_remote=False,
    )
    return _multipart(media)


@bp.get("/_matrix/federation/v1/media/thumbnail/<media_id>")
async def thumbnail(media_id: str) -> Response:
    """GET /_matrix/federation/v1/media/thumbnail/{mediaId}"""
    await authenticated_origin()
    svc = services()
    media = await svc.media.thumbnail(
        svc.config.server.server_name, media_id, int_arg("width"), int_arg("height"),
        request.args.get("method", "scale"), animated=bool_arg("animated"),
        authenticated=True, timeout_ms=_timeout_ms(), allow_remote=False,
    )
    return _multipart(media)


def _timeout_ms() -> int | None:
    return int_arg("timeout_ms") if "timeout_ms" in request.args else None


def _multipart(media: MediaFile) -> Response:
    boundary = secrets.token_hex(16)
    head = (
        f"\r\n--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}"
        f"\r\n--{boundary}\r\nContent-Type: {media.content_type}\r\n"
        f"Content-Disposition: {content_disposition(media.content_type, media.file_name)}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    # Opened now, so a file purged since the lookup is a 404 (from the open), not a broken body.
    try:
        file = open(media.path, "rb")  # noqa: SIM115 (closed by the body generator)
    except FileNotFoundError:
        raise MatrixError(Errcode.NOT_FOUND, "Media not found") from None

    async def body() -> AsyncIterator[bytes]:
        try:
            yield head
            while block := await asyncio.to_thread(file.read, _BLOCK):
                yield block
            yield tail
        finally:
            file.close()

    response = Response(body(), content_type=f"multipart/mixed; boundary={boundary}")
    response.content_length = len(head) + media.size + len(tail)
    return response
