"""A small application service on loopback (aiohttp) for the appservice tests: it records
every transaction (id, body, Authorization header) and answers user/alias queries, pings and
third-party lookups as each test tells it; and a registration-file writer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

__all__ = ["FakeAppservice", "Txn", "fake_appservice", "write_registration"]


@dataclass
class Txn:
    txn_id: str
    body: dict[str, Any]
    authorization: str | None
    content_type: str | None = None


@dataclass
class FakeAppservice:
    hs_token: str = field(default_factory=lambda: secrets.token_hex(16))
    url: str = ""
    transactions: list[Txn] = field(default_factory=list)
    received: asyncio.Queue[Txn] = field(default_factory=asyncio.Queue)
    fail_with: int | None = None  # answer transactions with this status while set
    # path -> handler(request) for the query/ping/thirdparty endpoints a test wants answered
    handlers: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of others
    delay_s: float = 0.0  # answer transactions this late (a slow bridge)
    in_flight: int = 0
    max_in_flight: int = 0  # the most transactions it was sent at once

    async def next_txn(self, timeout: float = 10.0) -> Txn:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def event_of_type(self, event_type: str, timeout: float = 10.0) -> tuple[Txn, dict[str, Any]]:
        """The next transaction event of `event_type` (earlier events are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            txn = await self.next_txn(max(0.1, deadline - asyncio.get_running_loop().time()))
            for event in txn.body.get("events", []):
                if event["type"] == event_type:
                    return txn, event

    def events(self) -> list[dict[str, Any]]:
        return [e for t in self.transactions for e in t.body.get("events", [])]

    async def _transaction(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return await self._take(request)
        finally:
            self.in_flight -= 1

    async def _take(self, request: web.Request) -> web.Response:
        if self.fail_with is not None:
            return web.json_response({"errcode": "M_UNKNOWN"}, status=self.fail_with)
        txn = Txn(
            request.match_info["txn_id"], await request.json(), request.headers.get("Authorization"),
            request.headers.get("Content-Type"),
        )
        self.transactions.append(txn)
        await self.received.put(txn)
        return web.json_response({})

    async def _other(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.hs_token}":
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        handler = self.handlers.get(request.path)
        if handler is None:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        return await handler(request)


@asynccontextmanager
async def fake_appservice(port: int = 0, hs_token: str | None = None) -> AsyncIterator[FakeAppservice]:
    fake = FakeAppservice()
    if hs_token is not None:
        fake.hs_token = hs_token
    app = web.Application()
    app.router.add_put("/_matrix/app/v1/transactions/{txn_id}", fake._transaction)
    app.router.add_route("*", "/{tail:.*}", fake._other)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def write_registration(directory: Path, name: str, **fields: Any) -> Path:
    """A registration YAML as bridges write it; `fields` override the defaults."""
    data: dict[str, Any] = {
        "id": name,
        "url": None,
        "as_token": secrets.token_hex(16),
        "hs_token": secrets.token_hex(16),
        "sender_localpart": f"{name}bot",
        "namespaces": {"users": [], "aliases": [], "rooms": []},
        "rate_limited": False,
    }
    data.update(fields)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
