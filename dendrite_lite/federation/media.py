"""Other servers' media over federation (server-server-api.md §Content Repository).

`MediaDownloads.download(server_name, media_id, timeout_s)` is an async context manager
yielding a `RemoteFile`: the content type, file name and the body as chunks, read while the
caller stores them (never held whole). It asks, in the spec's order:
1. `GET /_matrix/federation/v1/media/download/{mediaId}` (X-Matrix signed): a multipart/mixed
   answer, a JSON part (metadata, `{}` today) then the media, either its bytes or a `Location`
   header to fetch it from. That URL is the origin's choice, so it is fetched through the URL
   preview guard (media/preview_guard.py): never a private or loopback address;
2. when the origin answers 404 M_UNRECOGNIZED (it predates Matrix 1.11): the deprecated
   `GET /_matrix/media/v3/download/{serverName}/{mediaId}?allow_remote=false`, as the spec
   says (allow_remote=false: the origin must not go asking a third server).
Errors: `MediaNotFound` (the origin has no such media), `NotYetUploaded` (its 504), and the
federation client's `FederationError`s for everything else (unreachable, too large, garbage).

multipart/mixed is read with werkzeug's streaming (sans-IO) multipart decoder, which Quart
already brings; it is written for multipart/form-data and insists on a Content-Disposition in
every part, which a multipart/mixed part need not have (Synapse's JSON part has none), so
`_MixedDecoder` supplies an empty one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.datastructures import Headers
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    Preamble,
)

from dendrite_lite.federation.client import (
    FederationClient,
    RemoteError,
    UnreachableError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["MediaDownloads", "MediaNotFound", "NotYetUploaded", "RemoteFile"]

# The JSON part and the part headers are small; a peer sending more before the media is broken.
_MAX_HEADER_BYTES = 64 * 1024


class MediaNotFound(Exception):
    pass


class NotYetUploaded(Exception):
    pass


@dataclass(slots=True)
class RemoteFile:
    content_type: str | None
    file_name: str | None
    chunks: AsyncIterator[bytes]


class MediaDownloads:
    def __init__(
        self, client: FederationClient,
        location_client: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self._client = client
        # For Location answers: makes an httpx client over preview_guard's GuardedTransport,
        # one per answer (they are rare, and a client kept would hold a TLS context for nothing).
        self._location_client = location_client

    @contextlib.asynccontextmanager
    async def download(
        self, server_name: str, media_id: str, timeout_s: float, max_bytes: int
    ) -> AsyncIterator[RemoteFile]:
        """`max_bytes`: an answer announcing more is refused (ResponseTooLarge) before it is
        read; the caller caps what actually arrives."""
        # outbound_http (httpx) comes with the first download, as with every outbound client.
        from dendrite_lite.outbound_http import check_identity

        query = {"timeout_ms": str(int(timeout_s * 1000))}
        async with self._client.stream(
            "GET", server_name, f"/_matrix/federation/v1/media/download/{quote(media_id, safe='')}",
            query=query, timeout_s=max(timeout_s, 10.0) + 20.0,
        ) as response:
            if response.status_code == 200:
                async with self._multipart(server_name, response, max_bytes) as remote:
                    yield remote
                return
            error = await _error_of(server_name, response)
            if not (error.status in (404, 405, 400) and error.errcode in (None, "M_UNRECOGNIZED")):
                _raise(error)
        # An origin without the Matrix 1.11 endpoints.
        path = f"/_matrix/media/v3/download/{quote(server_name, safe='')}/{quote(media_id, safe='')}"
        async with self._client.stream(
            "GET", server_name, path, query={**query, "allow_remote": "false"}, sign=False,
            timeout_s=max(timeout_s, 10.0) + 20.0,
        ) as response:
            if response.status_code != 200:
                _raise(await _error_of(server_name, response))
            check_identity(response, max_bytes)
            yield RemoteFile(
                response.headers.get("content-type"), _file_name(response.headers.get("content-disposition")),
                response.aiter_bytes(),
            )

    @contextlib.asynccontextmanager
    async def _multipart(
        self, server_name: str, response: httpx.Response, max_bytes: int
    ) -> AsyncIterator[RemoteFile]:
        from dendrite_lite.outbound_http import check_identity, stream

        check_identity(response, max_bytes + _MAX_HEADER_BYTES)
        mimetype, options = parse_options_header(response.headers.get("content-type"))
        boundary = options.get("boundary")
        if mimetype != "multipart/mixed" or not boundary:
            raise UnreachableError(server_name, f"media answer is {mimetype or 'untyped'}, not multipart/mixed with a boundary")
        reader = _PartReader(boundary.encode("latin-1"), response.aiter_bytes(), server_name)
        await reader.next_part()  # the JSON metadata, unused: always {} so far
        headers = await reader.next_part()
        location = headers.get("location")
        if location is None:
            yield RemoteFile(headers.get("content-type"), _file_name(headers.get("content-disposition")), reader.data())
            return
        if self._location_client is None:
            raise UnreachableError(server_name, "media answer redirects (Location), which is not enabled")
        http = self._location_client()
        async with http, stream(http, "GET", location, timeout_s=30.0, connect_timeout_s=10.0) as found:
            if found.status_code != 200:
                raise UnreachableError(server_name, f"media Location answered HTTP {found.status_code}")
            check_identity(found, max_bytes)
            yield RemoteFile(
                found.headers.get("content-type"), _file_name(found.headers.get("content-disposition")),
                found.aiter_bytes(),
            )


class _MixedDecoder(MultipartDecoder):
    def _parse_headers(self, data: bytes | bytearray) -> Headers:
        headers = super()._parse_headers(data)
        headers.setdefault("Content-Disposition", "inline")
        return headers


class _PartReader:
    """The parts of a multipart body as it streams in: each part's headers, then the last
    part's data in chunks."""

    def __init__(self, boundary: bytes, raw: AsyncIterator[bytes], server_name: str) -> None:
        self._decoder = _MixedDecoder(boundary)
        self._raw = raw
        self._server_name = server_name
        self._buffered = 0
        self._done = False

    async def _event(self) -> Any:
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as e:
                raise UnreachableError(self._server_name, f"bad multipart media answer: {e}") from None
            if not isinstance(event, NeedData):
                return event
            chunk = await anext(self._raw, None)
            self._decoder.receive_data(chunk)

    async def next_part(self) -> Headers:
        """Skip to the next part; its headers."""
        while True:
            event = await self._event()
            if isinstance(event, (Field, File)):
                return event.headers
            if isinstance(event, Data):
                self._buffered += len(event.data)
            if isinstance(event, Epilogue) or self._buffered > _MAX_HEADER_BYTES:
                raise UnreachableError(self._server_name, "multipart media answer without its media part")
            assert isinstance(event, (Preamble, Data))

    async def data(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._event()
            if not isinstance(event, Data):
                raise UnreachableError(self._server_name, "multipart media answer has more than two parts")
            if event.data:
                yield event.data
            if not event.more_data:
                return


def _file_name(disposition: str | None) -> str | None:
    if not disposition:
        return None
    _, options = parse_options_header(disposition)
    name = options.get("filename")
    return name if isinstance(name, str) else None


async def _error_of(server_name: str, response: httpx.Response) -> RemoteError:
    from dendrite_lite.outbound_http import read_body

    try:
        body = json.loads(await read_body(response, _MAX_HEADER_BYTES))
    except ValueError:
        body = None
    return RemoteError(server_name, response.status_code, body)


def _raise(error: RemoteError) -> None:
    if error.status == 404:
        raise MediaNotFound(error.message)
    if error.status == 504 or error.errcode == "M_NOT_YET_UPLOADED":
        raise NotYetUploaded(error.message)
    raise error
