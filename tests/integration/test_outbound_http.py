"""Outbound HTTP (outbound_http.py over httpx) against hostile and plain TLS peers on loopback:
what a peer can make us buffer, and which connection a request with a given SNI may reuse."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.federation.client import FederationClient, UnreachableError, make_ssl_context
from dendrite_lite.outbound_http import ResponseTooLarge, SniPools, fetch, new_client
from tests.integration.test_server_lifecycle import _self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class TlsPeer:
    """A TLS server on loopback running `handler` per connection; records each handshake's SNI."""

    def __init__(self, cert: Path, key: Path, handler: Handler) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = self._sni
        self.handler = handler
        self.snis: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def _sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.snis.append(name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture(scope="module")
def cert_and_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed(tmp_path_factory.mktemp("peer-tls"))


@pytest.fixture
async def client() -> AsyncIterator[FederationClient]:
    fed = FederationClient("us.example", new_server_key("k"), verify_tls=False)
    yield fed
    await fed.aclose()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@contextlib.contextmanager
def traced_peak() -> AsyncIterator[list[int]]:  # type: ignore[misc]
    """The peak of Python allocations inside the block, in bytes (result[0] after it)."""
    result: list[int] = []
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield result
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


async def test_announced_100_mb_and_one_byte_costs_nothing(
    cert_and_key: tuple[Path, Path], client: FederationClient
) -> None:
    async def announce_and_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000000\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(60)

    async with TlsPeer(*cert_and_key, announce_and_stall) as dest:
        with traced_peak() as peak:
            results = await asyncio.gather(
                *(client.get_json(dest, "/_matrix/federation/v1/version", timeout_s=1.0)
                  for _ in range(5)),
                return_exceptions=True,
            )
    assert all(isinstance(r, UnreachableError) and "ReadTimeout" in str(r) for r in results), results
    # A buffer sized from the announced length would be 5 x 95 MiB.
    assert peak[0] < 4 * 1024 * 1024, f"peak {peak[0] / 1e6:.1f} MB"


async def test_endless_body_stops_at_the_cap(
    cert_and_key: tuple[Path, Path], client: FederationClient
) -> None:
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
        while True:
            writer.write(chunk)
            await writer.drain()
            sent += 0x10000

    cap = 1024 * 1024
    async with TlsPeer(*cert_and_key, endless) as dest:
        started = time.monotonic()
        with traced_peak() as peak, pytest.raises(UnreachableError, match="larger than"):
            await client.get_json(dest, "/_matrix/federation/v1/version", max_response_bytes=cap)
        took = time.monotonic() - started
    assert took < 5
    assert peak[0] < 4 * cap
    assert sent < 20 * cap  # we stopped reading, the peer's writes stalled


async def test_each_sni_gets_its_own_connection_and_reuses_it(cert_and_key: tuple[Path, Path]) -> None:
    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    peer = TlsPeer(*cert_and_key, keep_alive)
    http = new_client(SniPools(make_ssl_context(False)))
    async with peer as dest:
        for sni in ("a.example", "b.example", "a.example", "b.example", None):
            answer = await fetch(http, "GET", f"https://{dest}/x", sni=sni, max_body_bytes=100,
                                 timeout_s=5, connect_timeout_s=5)
            assert answer.status == 200 and answer.body == b"{}"
        # One handshake per name: a connection made for a.example never carries b.example's
        # requests, and each is reused. (No SNI is sent for an IP address.)
        assert peer.snis == ["a.example", "b.example", None]
    await http.aclose()


async def test_announced_length_over_the_cap_is_refused_before_reading(
    cert_and_key: tuple[Path, Path],
) -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(60)

    http = new_client(SniPools(make_ssl_context(False)))
    async with TlsPeer(*cert_and_key, big) as dest:
        started = time.monotonic()
        with pytest.raises(ResponseTooLarge, match="5000"):
            await fetch(http, "GET", f"https://{dest}/x", max_body_bytes=1000, timeout_s=10,
                        connect_timeout_s=5)
        assert time.monotonic() - started < 2
    await http.aclose()
