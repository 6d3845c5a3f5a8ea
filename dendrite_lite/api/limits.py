"""Request body size limits (config `limits.max_request_bytes`).

Quart enforces the limit while the body is read, for a Content-Length and for chunked bodies
alike, raising a 413 that api/errors.py renders as M_TOO_LARGE. A body whose Content-Length is
already too large is refused before the handler runs, so no handler work is wasted on it.
Media uploads get `media.max_upload_bytes` instead: the limit is chosen per request path when the
request object is created, because Quart fixes it then.

Before a 413 goes out, the rest of the refused body is read and discarded (bounded by bytes and
time). Otherwise Hypercorn closes the connection with unread data in the kernel buffer, the
kernel answers with a TCP reset, and the client sees "connection reset" instead of M_TOO_LARGE.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from quart import Quart, request
from quart.wrappers import Request
from werkzeug.exceptions import RequestEntityTooLarge

from dendrite_lite.config import Config

__all__ = [
    "register_body_limits",
    "drain_request_body",
    "MEDIA_UPLOAD_PREFIXES",
    "FEDERATION_TXN_PREFIX",
    "FEDERATION_TXN_MAX_BYTES",
]

_BODY_END = "dendrite_lite.body_end"
# A refused body is drained up to this much / this long; past that the connection is just closed.
DRAIN_MAX_BYTES = 8 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0

# Spec: content-repo.yaml (POST /upload, PUT /upload/{serverName}/{mediaId}).
MEDIA_UPLOAD_PREFIXES: tuple[str, ...] = (
    "/_matrix/media/v3/upload",
    "/_matrix/media/r0/upload",
)


# A federation transaction may carry 50 PDUs of up to 64 KiB each plus 100 EDUs
# (server-server-api.md §Transactions, §PDUs size limits), far over a client request limit.
# The receiver still refuses more than 50 PDUs / 100 EDUs after parsing.
FEDERATION_TXN_PREFIX = "/_matrix/federation/v1/send/"
FEDERATION_TXN_MAX_BYTES = 50 * 65536 + 100 * 65536


class _LimitedRequest(Request):
    # Set on the per-app subclass made by register_body_limits (requests are created before any
    # app context exists, so the limit cannot be read from current_app here).
    upload_limit: int | None = None

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        if path.startswith(MEDIA_UPLOAD_PREFIXES):
            kwargs["max_content_length"] = self.upload_limit
            self.max_content_length = self.upload_limit
        elif path.startswith(FEDERATION_TXN_PREFIX):
            kwargs["max_content_length"] = FEDERATION_TXN_MAX_BYTES
            self.max_content_length = FEDERATION_TXN_MAX_BYTES
        super().__init__(method, scheme, path, *args, **kwargs)


async def _refuse_declared_oversize() -> None:
    length = request.content_length
    limit = request.max_content_length
    if length is not None and limit is not None and length > limit:
        raise RequestEntityTooLarge()


class _BodyEndTracker:
    """ASGI wrapper that records in the scope when the client has sent its whole body.

    Quart keeps receiving (and, once over the limit, discarding) body chunks while a request is
    handled, so an error handler only has to wait for this event to drain a refused body.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ended = asyncio.Event()
        received = 0

        async def tracking_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if not message.get("more_body", False) or received > DRAIN_MAX_BYTES:
                    ended.set()
            elif message["type"] == "http.disconnect":
                ended.set()
            return message

        await self.app({**scope, _BODY_END: ended}, tracking_receive, send)


async def drain_request_body() -> None:
    """Wait (bounded) until the client has finished sending the current request's body."""
    ended = request.scope.get(_BODY_END)
    if isinstance(ended, asyncio.Event):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), DRAIN_TIMEOUT_S)


def register_body_limits(app: Quart, config: Config) -> None:
    app.config["MAX_CONTENT_LENGTH"] = config.limits.max_request_bytes
    limited: type[Request] = type(
        "LimitedRequest", (_LimitedRequest,), {"upload_limit": config.media.max_upload_bytes}
    )
    app.request_class = limited
    app.before_request(_refuse_declared_oversize)
    app.asgi_app = _BodyEndTracker(app.asgi_app)  # type: ignore[method-assign]
