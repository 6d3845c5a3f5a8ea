"""The HTTP/1.1 server under the ASGI apps: httptools' parser (llhttp, in C) on an asyncio protocol.

It replaced uvicorn, which ran the same parser: uvicorn's configuration and logging modules
(logging.config, configparser, socketserver, pickle, its middlewares) cost 1.35 MB of RSS in a
server whose peak joining a 1,000-member room is ~42 MB, and the apps need little of what it
offers: one ASGI `http` scope per request, request bodies streamed with back-pressure,
keep-alive with an idle timeout, pipelined requests answered in order, `Expect: 100-continue`,
and a graceful stop. No WebSockets, no lifespan, no HTTP/2 (the apps use none of them).

Errors the apps never see (bad HTTP, oversized headers) are answered here, as Matrix JSON.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools

from dendrite_lite.api.http import Message, Receive, Scope, Send

__all__ = ["HttpServer", "KEEP_ALIVE_S", "MAX_HEAD_BYTES"]

log = logging.getLogger(__name__)

AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KEEP_ALIVE_S = 5.0  # an idle connection is closed after this long
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together
_BODY_HIGH_WATER = 256 * 1024  # buffered request body that pauses reading from the socket
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class HttpServer:
    """Serves `app` on a listening socket until `stop` is set; then stops accepting, lets the
    requests in progress finish for up to `graceful_timeout_s`, and closes every connection."""

    def __init__(
        self, app: AsgiApp, *, ssl_context: ssl.SSLContext | None, graceful_timeout_s: float
    ) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.graceful_timeout_s = graceful_timeout_s
        self.connections: set[_Connection] = set()
        self.stopping = False
        self._idle = asyncio.Event()  # set while there is no connection

    async def serve(self, sock: Any, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self), sock=sock, ssl=self.ssl_context, backlog=128
        )
        try:
            await stop.wait()
        finally:
            server.close()
            self.stopping = True
            for conn in list(self.connections):
                conn.close_when_idle()
            if self.connections:
                self._idle.clear()
                try:
                    await asyncio.wait_for(self._idle.wait(), self.graceful_timeout_s)
                except TimeoutError:
                    log.warning("%d connections still busy after %.0f s; closing them",
                                len(self.connections), self.graceful_timeout_s)
            for conn in list(self.connections):
                conn.abort()

    def _forget(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if not self.connections:
            self._idle.set()


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.scheme = "http"
        self.current: _Exchange | None = None  # being answered
        self.parsing: _Exchange | None = None  # receiving its body (the same or a pipelined one)
        self.queued: deque[_Exchange] = deque()  # pipelined, waiting for `current`
        self.keep_alive_timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.reading_paused = False
        self.writable = asyncio.Event()
        self.writable.set()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0

    # --- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self.client = _address(transport.get_extra_info("peername"))
        self.sockname = _address(transport.get_extra_info("sockname"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self._start_keep_alive_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_keep_alive_timer()
        for exchange in (self.current, self.parsing, *self.queued):
            if exchange is not None:
                exchange.disconnected()
        self.queued.clear()
        self.writable.set()
        self.server._forget(self)

    def data_received(self, data: bytes) -> None:
        self._cancel_keep_alive_timer()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "M_UNRECOGNIZED", "Protocol upgrades are not supported")
        except httptools.HttpParserError:
            # An exception in a callback reaches here wrapped (HttpParserCallbackError).
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "M_TOO_LARGE", "Request headers too large")
            else:
                self._refuse(400, "M_UNRECOGNIZED", "Invalid HTTP request")
            return
        if self.current is None and not self.closed:
            # Between requests (or inside a head that has not ended): still idle, by the clock.
            self._start_keep_alive_timer()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # --- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        url = httptools.parse_url(self._url)
        raw_path = url.path or b"/"
        scope: Scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": self.parser.get_http_version(),
            "method": self.parser.get_method().decode("ascii"),
            "scheme": self.scheme,
            "path": unquote(raw_path.decode("ascii", "surrogateescape")),
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "root_path": "",
            "headers": self._headers,
            "client": self.client,
            "server": self.sockname,
        }
        expect_continue = (b"expect", b"100-continue") in self._headers
        exchange = _Exchange(self, scope, self.parser.should_keep_alive(), expect_continue)
        self.parsing = exchange
        if self.current is None:
            self._start(exchange)
        else:
            # Pipelined: answered in order once the one before is; read no further meanwhile.
            self.queued.append(exchange)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.add_body(body)

    def on_message_complete(self) -> None:
        if self.parsing is not None:
            self.parsing.body_complete()

    # --- the exchanges -------------------------------------------------------------------------
    def _start(self, exchange: _Exchange) -> None:
        self.current = exchange
        exchange.task = asyncio.get_running_loop().create_task(exchange.run())

    def answered(self, exchange: _Exchange) -> None:
        """`exchange`'s response is written entirely."""
        self.current = None
        if self.closed:
            return
        if not exchange.keep_alive or not exchange.request_complete or self.server.stopping:
            # A request body not read to its end would be parsed as the next request.
            self.transport.close()  # type: ignore[union-attr]
            return
        if self.queued:
            self._start(self.queued.popleft())
            if not self.queued:
                self._resume_reading()
            return
        self._resume_reading()
        self._start_keep_alive_timer()

    def close_when_idle(self) -> None:
        if self.current is None and not self.closed:
            self.transport.close()  # type: ignore[union-attr]

    def abort(self) -> None:
        for exchange in (self.current, *self.queued):
            if exchange is not None and exchange.task is not None:
                exchange.task.cancel()
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def body_buffered(self, size: int) -> None:
        if size > _BODY_HIGH_WATER:
            self._pause_reading()
        elif not self.queued:
            self._resume_reading()

    # --- helpers -------------------------------------------------------------------------------
    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge()

    def _refuse(self, status: int, errcode: str, error: str) -> None:
        """Answer a request the parser rejected, then close: the stream is unusable."""
        if self.current is None and not self.closed:
            body = b'{"errcode":"%s","error":"%s"}' % (errcode.encode(), error.encode())
            self.write(_head(status, [(b"content-type", b"application/json")], len(body), False) + body)
        if not self.closed:
            self.transport.close()  # type: ignore[union-attr]

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def _start_keep_alive_timer(self) -> None:
        self._cancel_keep_alive_timer()
        loop = asyncio.get_running_loop()
        self.keep_alive_timer = loop.call_later(KEEP_ALIVE_S, self._keep_alive_expired)

    def _cancel_keep_alive_timer(self) -> None:
        if self.keep_alive_timer is not None:
            self.keep_alive_timer.cancel()
            self.keep_alive_timer = None

    def _keep_alive_expired(self) -> None:
        self.keep_alive_timer = None
        if self.current is None and not self.closed:
            self.transport.close()  # type: ignore[union-attr]


class _HeadTooLarge(Exception):
    pass


class _Exchange:
    """One request and its response: the ASGI receive/send pair the app is called with."""

    def __init__(self, conn: _Connection, scope: Scope, keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.task: asyncio.Task[None] | None = None
        self.body: list[bytes] = []
        self.buffered = 0
        self.request_complete = False
        self.gone = False
        self.body_sent_to_app = False
        self.changed = asyncio.Event()
        self.response_started = False
        self.response_complete = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_written = False
        self.chunked = False

    # --- from the connection -------------------------------------------------------------------
    def add_body(self, data: bytes) -> None:
        self.body.append(data)
        self.buffered += len(data)
        self.changed.set()
        if self is self.conn.current:
            self.conn.body_buffered(self.buffered)

    def body_complete(self) -> None:
        self.request_complete = True
        self.changed.set()

    def disconnected(self) -> None:
        self.gone = True
        self.changed.set()

    # --- the app -------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self.conn.server.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error answering %s %s", self.scope["method"], self.scope["path"])
            if not self.response_started:
                body = b'{"errcode":"M_UNKNOWN","error":"Internal server error"}'
                await self.send({"type": "http.response.start", "status": 500,
                                 "headers": [(b"content-type", b"application/json")]})
                await self.send({"type": "http.response.body", "body": body})
            else:
                self.keep_alive = False
                self._finish()
            return
        if not self.response_complete:  # the app returned without finishing its response
            self.keep_alive = False
            if not self.response_started:
                await self.send({"type": "http.response.start", "status": 500, "headers": []})
            self._finish()

    async def receive(self) -> Message:
        if self.expect_continue and not self.response_started and not self.gone:
            self.expect_continue = False
            self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not self.body and not self.request_complete and not self.gone:
            self.changed.clear()
            await self.changed.wait()
        if self.gone or (self.body_sent_to_app and not self.body):
            # Everything was received: what is left to tell is the end of the connection.
            while not self.gone and not self.response_complete:
                self.changed.clear()
                await self.changed.wait()
            return {"type": "http.disconnect"}
        data = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        self.buffered = 0
        if self is self.conn.current:
            self.conn.body_buffered(0)
        more = not self.request_complete
        if not more:
            self.body_sent_to_app = True
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("the response was started already")
            self.response_started = True
            self.status = int(message["status"])
            self.headers = list(message.get("headers", ()))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.response_started or self.response_complete:
            raise RuntimeError("response body without a start, or after its end")
        body = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self.gone:
            if not more:
                self._finish()
            return
        out = b""
        if not self.head_written:
            self.head_written = True
            declared = any(name.lower() == b"content-length" for name, _ in self.headers)
            self.chunked = not declared and more
            self.keep_alive = self.keep_alive and not self.conn.server.stopping
            length = None if declared or self.chunked else len(body)
            out = _head(self.status, self.headers, length, self.keep_alive, chunked=self.chunked)
        if self.chunked:
            if body:
                out += b"%x\r\n%s\r\n" % (len(body), body)
            if not more:
                out += b"0\r\n\r\n"
        elif self.scope["method"] != "HEAD" or not body:
            out += body
        self.conn.write(out)
        if not more:
            self._finish()
        elif not self.conn.writable.is_set():
            await self.conn.writable.wait()

    def _finish(self) -> None:
        if not self.response_complete:
            self.response_complete = True
            self.changed.set()
            self.conn.answered(self)


def _head(
    status: int, headers: list[tuple[bytes, bytes]], length: int | None, keep_alive: bool,
    *, chunked: bool = False,
) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [b"HTTP/1.1 %d %s" % (status, phrase.encode("latin-1")), b"date: " + _date()]
    lines += [name + b": " + value for name, value in headers]
    if length is not None:
        lines.append(b"content-length: %d" % length)
    if chunked:
        lines.append(b"transfer-encoding: chunked")
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


_DATE: list[Any] = [0, b""]


def _date() -> bytes:
    # One Date header per second (RFC 9110 §6.6.1); strftime's names are the C locale's.
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[0] = now
        _DATE[1] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode("ascii")
    return _DATE[1]  # type: ignore[no-any-return]


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None
