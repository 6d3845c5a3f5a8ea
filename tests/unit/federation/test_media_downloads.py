"""federation/media.py over httpx.MockTransport: the multipart/mixed answer of the Matrix 1.11
endpoint (split at awkward places), the fallback to the legacy endpoint on 404 M_UNRECOGNIZED
(unsigned, allow_remote=false), not found / not yet uploaded, Location answers, size refusal."""

from __future__ import annotations

import httpx
import pytest

from dendrite_lite.federation.client import RemoteError, UnreachableError
from dendrite_lite.federation.media import MediaDownloads, MediaNotFound, NotYetUploaded
from dendrite_lite.outbound_http import ResponseTooLarge, new_client
from tests.unit.federation.test_client import make_client

ORIGIN = "them.example.org"
BODY = bytes(range(256)) * 40 + b"\r\n--b0undary" + b"tail"  # a near-boundary inside the media


def multipart(second_part_headers: bytes, data: bytes, boundary: bytes = b"b0undaryX") -> bytes:
    return (
        b"\r\n--" + boundary + b"\r\nContent-Type: application/json\r\n\r\n{}"
        + b"\r\n--" + boundary + b"\r\n" + second_part_headers + b"\r\n\r\n" + data
        + b"\r\n--" + boundary + b"--\r\n"
    )


class Chunks(httpx.AsyncByteStream):
    """The body in 7-byte pieces: boundaries and header ends arrive split."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self):
        for i in range(0, len(self.data), 7):
            yield self.data[i:i + 7]


async def _read(downloads: MediaDownloads, max_bytes: int = 1 << 20) -> tuple[str | None, str | None, bytes]:
    async with downloads.download(ORIGIN, "abcDEF", 5.0, max_bytes) as remote:
        data = b"".join([c async for c in remote.chunks])
    return remote.content_type, remote.file_name, data


async def test_multipart_answer_streams_the_second_part() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/.well-known/"):
            return httpx.Response(404)
        seen.append(request)
        body = multipart(b'Content-Type: image/png\r\nContent-Disposition: inline; filename="a b.png"', BODY)
        return httpx.Response(200, headers={"Content-Type": "multipart/mixed; boundary=b0undaryX"}, stream=Chunks(body))

    assert await _read(MediaDownloads(make_client(handler))) == ("image/png", "a b.png", BODY)
    (request,) = seen
    assert request.url.raw_path == b"/_matrix/federation/v1/media/download/abcDEF?timeout_ms=5000"
    assert request.headers["authorization"].startswith("X-Matrix ")


async def test_old_origin_asked_on_the_legacy_endpoint_unsigned() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/.well-known/"):
            return httpx.Response(404)
        seen.append(request)
        if request.url.path.startswith("/_matrix/federation/"):
            return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
        return httpx.Response(200, headers={"Content-Type": "text/plain", "Content-Disposition": "attachment; filename=x.txt"}, content=b"old")

    assert await _read(MediaDownloads(make_client(handler))) == ("text/plain", "x.txt", b"old")
    assert seen[1].url.raw_path == b"/_matrix/media/v3/download/them.example.org/abcDEF?timeout_ms=5000&allow_remote=false"
    assert "authorization" not in seen[1].headers


@pytest.mark.parametrize(
    ("status", "errcode", "error"),
    [(404, "M_NOT_FOUND", MediaNotFound), (504, "M_NOT_YET_UPLOADED", NotYetUploaded), (403, "M_FORBIDDEN", RemoteError)],
)
async def test_errors(status: int, errcode: str, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"errcode": errcode, "error": "no"})

    with pytest.raises(error):
        await _read(MediaDownloads(make_client(handler)))


async def test_not_multipart_and_too_large_refused() -> None:
    def plain(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "image/png"}, content=b"x")

    with pytest.raises(UnreachableError, match="not multipart/mixed"):
        await _read(MediaDownloads(make_client(plain)))

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "multipart/mixed; boundary=b0undaryX", "Content-Length": str(10 << 20)}, content=b"")

    with pytest.raises(ResponseTooLarge):
        await _read(MediaDownloads(make_client(huge)))


async def test_location_fetched_with_the_given_client() -> None:
    def origin(request: httpx.Request) -> httpx.Response:
        body = multipart(b"Location: https://cdn.example.net/f/1", b"")
        return httpx.Response(200, headers={"Content-Type": "multipart/mixed; boundary=b0undaryX"}, content=body)

    fetched: list[str] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        return httpx.Response(200, headers={"Content-Type": "video/mp4"}, content=b"movie")

    downloads = MediaDownloads(make_client(origin), location_client=lambda: new_client(httpx.MockTransport(cdn)))
    assert await _read(downloads) == ("video/mp4", None, b"movie")
    assert fetched == ["https://cdn.example.net/f/1"]
    with pytest.raises(UnreachableError, match="Location"):
        await _read(MediaDownloads(make_client(origin)))
