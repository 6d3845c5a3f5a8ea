"""Request and response primitives of the API layer, over plain ASGI.

Handlers use them the way they would a Flask-style framework:

    from dendrite_lite.api.http import Blueprint, Response, jsonify, request

    @bp.get("/_matrix/client/v3/rooms/<room_id>/state")
    async def get_state(room_id: str) -> Response:
        fmt = request.args.get("format", "content")
        return jsonify({...})

`request` is the request being handled (a context variable, so concurrent requests on one loop
never see each other's). The body is read on demand, within the request's size limit; bodies over
it become 413 M_TOO_LARGE after the rest was drained, so the client reads the error instead of a
connection reset.

Why not Quart+Hypercorn (the stack first chosen): measured per request on this machine, a
JSON PUT cost 1.31 ms of server CPU through Quart on Hypercorn against 0.25 ms through this layer
on uvicorn's httptools parser and uvloop, and Quart's imports alone weigh 18 MB of RSS. (The
server under this layer is now api/http_server.py, on the same parser.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

import orjson

from dendrite_lite.errors import Errcode, MatrixError

__all__ = [
    "Headers",
    "QueryArgs",
    "Request",
    "Response",
    "ClientDisconnected",
    "jsonify",
    "request",
    "current_request",
    "DRAIN_MAX_BYTES",
    "DRAIN_TIMEOUT_S",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# A refused body is drained up to this much / this long; past that the connection is just closed.
DRAIN_MAX_BYTES = 8 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0


class ClientDisconnected(Exception):
    """The client went away while its body was being read: nobody is left to answer."""


class Headers:
    """Request headers, looked up case-insensitively (ASGI gives lower-cased names)."""

    __slots__ = ("_raw", "_map")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        if self._map is None:
            merged: dict[str, str] = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                merged[key] = f"{merged[key]}, {text}" if key in merged else text
            self._map = merged
        return self._map

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._lookup().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._lookup()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._lookup().items())


class QueryArgs:
    """Query parameters: `get` gives the first value of a name, `getlist` all of them."""

    __slots__ = ("_pairs",)

    def __init__(self, query_string: bytes) -> None:
        self._pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._pairs))

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)


class Request:
    """One HTTP request. `max_content_length` is the body limit chosen by the app for its path."""

    def __init__(self, scope: Scope, receive: Receive, max_content_length: int | None) -> None:
        self.scope = scope
        self._receive = receive
        self.max_content_length = max_content_length
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = Headers(scope["headers"])
        self._args: QueryArgs | None = None
        self._body: bytes | None = None
        self.view_args: dict[str, str] = {}
        self.app: Any = None  # the App serving it (api/asgi.py sets it)

    @property
    def args(self) -> QueryArgs:
        if self._args is None:
            self._args = QueryArgs(self.scope.get("query_string") or b"")
        return self._args

    @property
    def remote_addr(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value)

    async def get_data(self) -> bytes:
        """The whole body (read once, then cached); 413 M_TOO_LARGE past the limit."""
        if self._body is None:
            self._body = await self._read_body()
        return self._body

    async def get_json(self) -> Any:
        body = await self.get_data()
        return json.loads(body) if body else None

    async def refuse_declared_oversize(self) -> None:
        """413 M_TOO_LARGE now for a Content-Length over the limit, before any handler work."""
        limit = self.max_content_length
        declared = self.content_length
        if limit is not None and declared is not None and declared > limit:
            await self.drain(0)
            raise _too_large()

    async def _read_body(self) -> bytes:
        # A declared Content-Length over the limit was refused before the handler (api/asgi.py).
        limit = self.max_content_length
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                if message.get("more_body", False):
                    await self.drain(size)
                raise _too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def drain(self, already: int) -> None:
        """Read and drop the rest of a refused body (bounded by bytes and time).

        Otherwise the server closes the connection with unread data in the kernel buffer, the
        kernel answers with a TCP reset, and the client sees "connection reset" instead of the 413.
        """
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        received = already
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            while received <= DRAIN_MAX_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                message = await asyncio.wait_for(self._receive(), left)
                if message["type"] != "http.request":
                    return
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _too_large() -> MatrixError:
    return MatrixError(Errcode.TOO_LARGE, "Request body too large", status=413)


class Response:
    """A complete response: status, headers (names as written) and the body bytes."""

    __slots__ = ("body", "status_code", "headers")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status_code = status
        self.headers: dict[str, str] = dict(headers) if headers else {}
        if content_type is not None:
            self.headers["Content-Type"] = content_type

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")


_JSON = "application/json"


def jsonify(value: Any) -> Response:
    """`value` as a JSON response (orjson; the standard library for what orjson refuses, e.g.
    integers past 64 bits that a client put into event content)."""
    try:
        body = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, content_type=_JSON)


_current: ContextVar[Request] = ContextVar("dendrite_lite_request")


def current_request() -> Request:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("no request is being handled in this context") from None


def bind_request(req: Request) -> Any:
    """Make `req` the current request (returns the token for `unbind_request`)."""
    return _current.set(req)


def unbind_request(token: Any) -> None:
    _current.reset(token)


class _RequestProxy:
    """`request`: attribute access goes to the request of the current context."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(current_request(), name)


request: Any = _RequestProxy()
