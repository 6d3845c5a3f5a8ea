"""Outbound HTTP/1.1 for the server process: h11 over asyncio streams, with a connection pool.

Federation requests and /.well-known lookups go through here. It replaced httpx in the server
image for memory: httpx with its httpcore/anyio stack costs ~5.5 MB of RSS in a process whose
whole budget, joining a 1,000-member room, is ~40 MB; h11 costs 0.5 MB. What federation needs
is small: one request at a time per connection, keep-alive, TLS with an SNI of our choosing,
timeouts, and a cap on what a peer can make us buffer. No redirects, cookies, proxies or
content decoding (we send no Accept-Encoding, so peers send identity bodies).

`HttpTransport` is what callers depend on; tests put a fake behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import h11

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "HttpClient",
    "HttpError",
    "ConnectFailed",
    "ResponseTooLarge",
]

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
_READ_SIZE = 64 * 1024
_MAX_HEADER_BYTES = 64 * 1024


class HttpError(Exception):
    """No usable answer: the connection broke, timed out, or the peer spoke bad HTTP."""


class ConnectFailed(HttpError):
    """No connection: resolution, refusal, TLS handshake or connect timeout. Nothing was sent,
    so another address may be tried."""


class ResponseTooLarge(HttpError):
    pass


@dataclass(slots=True)
class HttpRequest:
    method: str
    url: str  # http(s)://host[:port]/path?query, path and query already percent-encoded
    headers: Mapping[str, str] = field(default_factory=dict)  # Host defaults to the URL's
    body: bytes | None = None
    sni: str | None = None  # TLS server name (and certificate name) when not the URL's host
    timeout_s: float = DEFAULT_TIMEOUT_S  # for each step: sending, each read
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes | bytearray


class HttpTransport(Protocol):
    async def send(self, request: HttpRequest, max_body_bytes: int) -> HttpResponse:
        """Raises ConnectFailed, ResponseTooLarge (the body passed `max_body_bytes`) or
        HttpError."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    sni: str | None


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self.idle_since = time.monotonic()
        self.used = False  # answered a request before: a failure may mean it went stale

    def usable(self, idle_timeout_s: float) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < idle_timeout_s
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class HttpClient:
    """Pooled HTTP/1.1 client. `ssl_context` is used for every https origin."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        max_idle_per_origin: int = 4,
        max_idle: int = 256,
        idle_timeout_s: float = 30.0,
    ) -> None:
        self.ssl_context = ssl_context
        self.max_idle_per_origin = max_idle_per_origin
        self.max_idle = max_idle
        self.idle_timeout_s = idle_timeout_s
        self._idle: OrderedDict[_Origin, list[_Connection]] = OrderedDict()
        self._idle_count = 0

    async def send(self, request: HttpRequest, max_body_bytes: int) -> HttpResponse:
        origin, target, host_header = _split(request)
        conn = self._checkout(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, origin, request, target, host_header, max_body_bytes)
            except _StaleConnection:
                pass  # the peer closed it while idle: nothing was answered, try a new one
        conn = await self._connect(origin, request)
        try:
            return await self._exchange(conn, origin, request, target, host_header, max_body_bytes)
        except _StaleConnection as e:
            raise HttpError(f"connection closed before an answer: {e.__cause__ or e}") from None

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    # --- the pool ------------------------------------------------------------------------------
    def _checkout(self, origin: _Origin) -> _Connection | None:
        conns = self._idle.get(origin)
        while conns:
            conn = conns.pop()
            self._idle_count -= 1
            if conn.usable(self.idle_timeout_s):
                return conn
            conn.close()
        return None

    def _checkin(self, origin: _Origin, conn: _Connection) -> None:
        conns = self._idle.setdefault(origin, [])
        self._idle.move_to_end(origin)
        if len(conns) >= self.max_idle_per_origin:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)
        self._idle_count += 1
        while self._idle_count > self.max_idle:
            oldest, old_conns = next(iter(self._idle.items()))
            if old_conns:
                old_conns.pop(0).close()
                self._idle_count -= 1
            if not old_conns:
                del self._idle[oldest]

    async def _connect(self, origin: _Origin, request: HttpRequest) -> _Connection:
        tls = origin.scheme == "https"
        try:
            async with asyncio.timeout(request.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    origin.host, origin.port,
                    ssl=self.ssl_context if tls else None,
                    server_hostname=(origin.sni or origin.host) if tls else None,
                    limit=_READ_SIZE,
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {origin.host}:{origin.port} timed out") from None
        except (OSError, ssl.SSLError, ssl.CertificateError) as e:
            raise ConnectFailed(f"cannot connect to {origin.host}:{origin.port}: {e}") from None
        return _Connection(reader, writer)

    # --- one request and its answer ------------------------------------------------------------
    async def _exchange(
        self, conn: _Connection, origin: _Origin, request: HttpRequest, target: str,
        host_header: str, max_body_bytes: int,
    ) -> HttpResponse:
        response: h11.Response | None = None
        body = _Body()
        try:
            async with asyncio.timeout(request.timeout_s):
                await self._send_request(conn, request, target, host_header)
            size = 0
            while True:
                event = await _next_event(conn, request.timeout_s)
                if isinstance(event, h11.Response):
                    response = event
                    declared = _header(event.headers, b"content-length")
                    if declared is not None and declared.isdigit():
                        if int(declared) > max_body_bytes:
                            raise ResponseTooLarge(f"Content-Length {declared} > {max_body_bytes}")
                        body.expect(int(declared))  # h11 holds the peer to it
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > max_body_bytes:
                        raise ResponseTooLarge(f"body larger than {max_body_bytes} bytes")
                    body.add(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError("the peer closed the connection")
                # h11.InformationalResponse (1xx): the real answer follows
        except BaseException as e:
            conn.close()
            if isinstance(e, HttpError):
                raise
            if isinstance(e, TimeoutError):  # before OSError: it is one
                raise HttpError(f"no answer within {request.timeout_s} s") from None
            if isinstance(e, (h11.ProtocolError, OSError, ssl.SSLError)):
                if conn.used and response is None:
                    raise _StaleConnection() from e  # closed while idle: nothing was answered
                raise HttpError(f"connection failed: {type(e).__name__}: {e}") from None
            raise
        assert response is not None
        conn.used = True
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            self._checkin(origin, conn)
        else:
            conn.close()
        headers: dict[str, str] = {}
        for name, value in response.headers:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return HttpResponse(response.status_code, headers, body.done())

    async def _send_request(
        self, conn: _Connection, request: HttpRequest, target: str, host_header: str
    ) -> None:
        headers = [("Host", host_header)]
        headers += [(k, v) for k, v in request.headers.items() if k.lower() != "host"]
        if request.body is not None:
            headers.append(("Content-Length", str(len(request.body))))
        data = conn.h11.send(h11.Request(method=request.method, target=target, headers=headers))
        if request.body:
            data += conn.h11.send(h11.Data(data=request.body))
        data += conn.h11.send(h11.EndOfMessage())
        conn.writer.write(data)
        await conn.writer.drain()


class _StaleConnection(Exception):
    pass


class _Body:
    """A response body gathered into one buffer: allocated once at the announced length (a
    send_join answer is megabytes; chunks joined at the end would need it twice)."""

    def __init__(self) -> None:
        self._buf: bytearray | None = None
        self._chunks: list[bytes] = []
        self._pos = 0

    def expect(self, length: int) -> None:
        self._buf = bytearray(length)

    def add(self, data: bytes | bytearray) -> None:
        if self._buf is None:
            self._chunks.append(bytes(data))
        else:
            self._buf[self._pos : self._pos + len(data)] = data
            self._pos += len(data)

    def done(self) -> bytes | bytearray:
        return self._buf if self._buf is not None else b"".join(self._chunks)


async def _next_event(conn: _Connection, timeout_s: float) -> h11.Event:
    while True:
        event = conn.h11.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]
        async with asyncio.timeout(timeout_s):
            data = await conn.reader.read(_READ_SIZE)
        conn.h11.receive_data(data)  # b"" is the peer's EOF


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _split(request: HttpRequest) -> tuple[_Origin, str, str]:
    """(origin, request target, Host header) of `request`."""
    parts = urlsplit(request.url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"unsupported URL {request.url!r}")
    default = 443 if scheme == "https" else 80
    try:
        port = parts.port or default
    except ValueError:
        raise ConnectFailed(f"bad port in {request.url!r}") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = request.headers.get("Host") or request.headers.get("host") or parts.netloc
    return _Origin(scheme, parts.hostname, port, request.sni), target, host_header
