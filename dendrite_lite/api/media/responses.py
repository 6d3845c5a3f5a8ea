"""How a media file goes out: streamed from disk, with Range, and the headers that keep a
browser from treating it as part of a web page (content_repo.md; §Serving inline content).

- `Content-Security-Policy` (the spec's recommended policy), `X-Content-Type-Options: nosniff`
  and `Cross-Origin-Resource-Policy: cross-origin` go on every answer of the media blueprints,
  errors included (`add_media_headers`, registered as their after_request).
- `Content-Disposition` is `inline` only for the spec's list of types that cannot run script,
  `attachment` otherwise; the file name (already sanitised) is sent RFC 6266 style, as
  `filename*=utf-8''…` percent-encoded, so no byte of it can end the header or add a parameter.
- The body is Quart's FileBody (read in a thread, `STREAM_BLOCK` at a time), with
  `make_conditional`: `Range` gives 206 with Content-Range (416 past the end), and the ETag (the
  content hash) answers If-None-Match with 304.
"""

from __future__ import annotations

from urllib.parse import quote

from quart import Response, request
from quart.wrappers.response import FileBody

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.service import MediaFile

__all__ = ["file_response", "add_media_headers", "content_disposition", "INLINE_TYPES"]

STREAM_BLOCK = 256 * 1024

CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)
MEDIA_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}

# content_repo.md §Serving inline content: the types that may be served inline.
INLINE_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})


async def add_media_headers(response: Response) -> Response:
    response.headers.update(MEDIA_HEADERS)
    return response


def content_disposition(content_type: str, file_name: str | None) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    disposition = "inline" if kind in INLINE_TYPES else "attachment"
    if file_name:
        disposition += "; filename*=utf-8''" + quote(file_name, safe="")
    return disposition


class _FileBody(FileBody):
    """Quart's FileBody, also for a suffix range (`bytes=-500`: the last 500 bytes), which
    Werkzeug parses as a negative start that FileBody would pass on as is (a 500)."""

    async def make_conditional(self, begin: int, end: int | None) -> int:
        if begin < 0:
            begin = max(0, self.size + begin)
        return await super().make_conditional(begin, end)


async def file_response(media: MediaFile) -> Response:
    try:
        body = _FileBody(media.path, buffer_size=STREAM_BLOCK)
    except FileNotFoundError:
        # Deleted (purged) between the lookup and now.
        raise MatrixError(Errcode.NOT_FOUND, "Media not found") from None
    response = Response(body, content_type=media.content_type)
    response.content_length = media.size
    response.headers["Content-Disposition"] = content_disposition(media.content_type, media.file_name)
    response.set_etag(media.etag)
    response.accept_ranges = "bytes"  # on every answer, so a client knows it may resume
    return await response.make_conditional(request, accept_ranges=True, complete_length=media.size)
