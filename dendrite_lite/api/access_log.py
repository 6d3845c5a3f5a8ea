"""One log line per HTTP request, written by an ASGI wrapper around the Quart app.

At the ASGI level every response is seen (including ones Quart produces itself), and the real
status and byte count are known. Only the path is logged, never the query string: clients may
still send `?access_token=`. The same status and time go to `on_response` (the request metrics,
metrics.py), which costs one measurement instead of two wrappers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hypercorn.typing import ASGIFramework as ASGIApp
from hypercorn.typing import ASGIReceiveCallable as Receive
from hypercorn.typing import ASGISendCallable as Send
from hypercorn.typing import Scope

__all__ = ["AccessLog"]


log = logging.getLogger("dendrite_lite.access")


class AccessLog:
    def __init__(
        self,
        app: ASGIApp,
        logger: logging.Logger = log,
        on_response: Callable[[Scope, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.logger = logger
        self.on_response = on_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        sent = 0

        async def counting_send(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            seconds = time.perf_counter() - start
            self.logger.info(
                "%s %s %d %.0fms %d", scope["method"], scope["path"], status, seconds * 1000, sent
            )
            if self.on_response is not None:
                self.on_response(scope, status, seconds)
