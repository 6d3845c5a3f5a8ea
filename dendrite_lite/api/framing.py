"""Requests whose body framing is ambiguous are refused at the ASGI edge, before the app.

RFC 9112 §6.1: a request with both Transfer-Encoding and Content-Length may be an attempt at
request smuggling (a proxy in front of us and we could disagree on where the body ends); the
server MAY answer 400 and MUST then close the connection. h11, under Hypercorn, reads such a
request by its Transfer-Encoding and passes both headers on, so the check is ours. Two different
Content-Lengths are the same ambiguity (§6.3), refused the same way.

The answer is Matrix JSON with `Connection: close` over HTTP/1.x, so Hypercorn closes the
connection after it instead of reading whatever follows as a next request.
"""

from __future__ import annotations

from typing import Any

from hypercorn.typing import ASGIFramework as ASGIApp
from hypercorn.typing import ASGIReceiveCallable as Receive
from hypercorn.typing import ASGISendCallable as Send
from hypercorn.typing import Scope
import orjson

__all__ = ["FramingGuard"]


_BODY = orjson.dumps({"errcode": "M_UNKNOWN", "error": "Ambiguous request body framing"})


class FramingGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _ambiguous(scope["headers"]):
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(_BODY)).encode())]
            if scope.get("http_version", "1.1").startswith("1"):
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)


def _ambiguous(headers: list[tuple[bytes, bytes]]) -> bool:
    lengths: set[bytes] = set()
    chunked = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif name == b"transfer-encoding":
            chunked = True
    return len(lengths) > 1 or (chunked and bool(lengths))
