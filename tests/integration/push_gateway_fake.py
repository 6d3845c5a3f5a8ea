"""A push gateway on loopback (aiohttp) for the pusher tests: records every
POST /_matrix/push/v1/notify body and answers with the pushkeys it is told to reject."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

__all__ = ["FakeGateway", "fake_gateway", "NOTIFY_PATH"]

NOTIFY_PATH = "/_matrix/push/v1/notify"


class FakeGateway:
    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reject: set[str] = set()
        self.fail_next = 0  # answer this many requests with 503 first
        self.url = ""

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def _notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({}, status=503)
        await self.received.put(body)
        keys = [d["pushkey"] for d in body["notification"].get("devices", [])]
        return web.json_response({"rejected": [k for k in keys if k in self.reject]})


@asynccontextmanager
async def fake_gateway(
    port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[FakeGateway]:
    gateway = FakeGateway()
    app = web.Application()
    app.router.add_post(NOTIFY_PATH, gateway._notify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context is not None else "http"
    gateway.url = f"{scheme}://127.0.0.1:{port}{NOTIFY_PATH}"
    try:
        yield gateway
    finally:
        await runner.cleanup()
