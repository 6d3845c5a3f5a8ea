"""The HTTP edge as an attacker sees it, through a real server (Quart on Hypercorn) on loopback:
ambiguous body framing, trickled heads and bodies, pipelining without reading, missing Host,
HTTP/2 over TLS and h2c. While each attack runs, a normal `GET /_matrix/client/versions` must
keep answering within 100 ms."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from quart import Quart

from dendrite_lite.api.listener import KEEP_ALIVE_S, MAX_REQUESTS_PER_CONNECTION
from dendrite_lite.server import Listener, raise_open_files_limit
from tests.conftest import RunningServer, StartServer
from tests.integration.test_server_lifecycle import _self_signed

VERSIONS = "/_matrix/client/versions"
BODY_TIMEOUT_S = 2  # the test server's; the default is api.app.BODY_TIMEOUT_S


async def assert_responsive(srv: RunningServer) -> None:
    """A fresh connection gets /versions within 100 ms (best of three: the machine is noisy,
    but a server kept busy by an attack fails all three)."""
    best = float("inf")
    async with httpx.AsyncClient(base_url=srv.listening.client_url, timeout=5) as fresh:
        for _ in range(3):
            started = time.perf_counter()
            resp = await fresh.get(VERSIONS)
            best = min(best, time.perf_counter() - started)
            assert resp.status_code == 200 and "versions" in resp.json()
    assert best < 0.1, f"/versions took {best * 1000:.0f} ms"


async def connect(srv: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = srv.listening.client
    return await asyncio.open_connection(host, port)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if the server closes the connection within `seconds` (whatever it sends first)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def tune(body_timeout_s: int):  # type: ignore[no-untyped-def]
    def configure(app: Quart, listener: Listener) -> None:
        app.config["BODY_TIMEOUT"] = body_timeout_s

    return configure


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    from tests.conftest import launch

    s = await launch(tmp_path_factory.mktemp("hardening"), configure_app=tune(BODY_TIMEOUT_S))
    yield s
    await s.stop()


# --- request framing (RFC 9112 §6) -------------------------------------------------------------
LOGIN_BODY = b'{"type":"m.login.password"}'


async def test_content_length_and_transfer_encoding_is_400_and_closed(srv: RunningServer) -> None:
    reader, writer = await connect(srv)
    writer.write(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(LOGIN_BODY):x}\r\n".encode() + LOGIN_BODY + b"\r\n0\r\n\r\n"
        # A smuggled second request: it must never be answered.
        + b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    status, headers, body = await read_response(reader)
    assert status == 400
    assert json.loads(body)["errcode"] == "M_UNKNOWN"
    assert headers["connection"] == "close"
    assert await reader.read() == b""  # closed, the smuggled request unanswered
    writer.close()
    await assert_responsive(srv)


async def test_two_different_content_lengths_are_400_and_closed(srv: RunningServer) -> None:
    reader, writer = await connect(srv)
    writer.write(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 4\r\nContent-Length: 28\r\n\r\n" + LOGIN_BODY
    )
    status, _, _ = await read_response(reader)
    assert status == 400
    assert await closed_within(reader, 2)
    writer.close()
    await assert_responsive(srv)


async def test_http11_without_host_is_400(srv: RunningServer) -> None:
    reader, writer = await connect(srv)
    writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\n\r\n")
    status, _, _ = await read_response(reader)
    assert status == 400
    writer.close()
    await assert_responsive(srv)


async def test_websocket_upgrade_gets_an_answer(srv: RunningServer) -> None:
    # No endpoint speaks WebSocket; the request must still be answered, not dropped.
    reader, writer = await connect(srv)
    writer.write(
        b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status = int(head.split()[1])
    assert status != 101 and 400 <= status < 500
    writer.close()
    await assert_responsive(srv)


# --- slow clients ------------------------------------------------------------------------------
async def _trickle_head(srv: RunningServer, interval_s: float) -> float:
    """Send a request head one byte at a time; seconds until the server closed."""
    reader, writer = await connect(srv)
    started = time.monotonic()
    head = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
    try:
        for byte in head:
            writer.write(bytes([byte]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            if await closed_within(reader, interval_s):
                return time.monotonic() - started
        raise AssertionError("the whole head was trickled in without the server closing")
    finally:
        writer.close()


async def test_trickled_head_is_closed_within_10_s(srv: RunningServer) -> None:
    took = await _trickle_head(srv, 2.0)
    assert KEEP_ALIVE_S - 0.5 <= took < 10


async def test_500_trickled_heads_do_not_stop_normal_requests(srv: RunningServer) -> None:
    trickles = [asyncio.create_task(_trickle_head(srv, 2.0)) for _ in range(500)]
    try:
        await asyncio.sleep(1.0)  # every connection open and trickling
        await assert_responsive(srv)
        await asyncio.sleep(2.5)
        await assert_responsive(srv)
        took = await asyncio.wait_for(asyncio.gather(*trickles), 20)
    finally:
        for t in trickles:
            t.cancel()
    assert max(took) < 10


async def test_trickled_body_is_answered_408_and_closed(srv: RunningServer) -> None:
    reader, writer = await connect(srv)
    writer.write(
        b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    started = time.monotonic()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(60):
                await asyncio.sleep(0.5)
                writer.write(b" ")
                await writer.drain()

    trickling = asyncio.create_task(trickle())
    try:
        status, headers, body = await asyncio.wait_for(read_response(reader), BODY_TIMEOUT_S + 5)
        assert status == 408
        assert json.loads(body)["errcode"] == "M_UNKNOWN"
        assert await closed_within(reader, 2)
        assert time.monotonic() - started < BODY_TIMEOUT_S + 3
        await assert_responsive(srv)
    finally:
        trickling.cancel()
        writer.close()


# --- pipelining without reading ------------------------------------------------------------------
def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_pipelining_without_reading_does_not_grow_the_server(srv: RunningServer) -> None:
    reader, writer = await connect(srv)
    request = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n"
    before = _rss_mib()
    sent = 0
    deadline = time.monotonic() + 8

    async def flood() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < deadline:
                writer.write(request * 200)
                await asyncio.wait_for(writer.drain(), 1)
                sent += 200

    with contextlib.suppress(TimeoutError):
        await flood()  # drain() stops returning once the server stops reading: back-pressure
    grown = _rss_mib() - before
    await assert_responsive(srv)
    writer.transport.abort()
    # The server stops reading while its answers are not read (back-pressure), and closes the
    # connection after MAX_REQUESTS_PER_CONNECTION: it never parses and answers into memory
    # everything a client sends (the old server grew 63 -> 192 MB in 23 s here).
    assert grown < 40, f"RSS grew {grown:.0f} MiB after {sent} pipelined requests"


async def test_connection_closed_after_max_requests(srv: RunningServer) -> None:
    reader, writer = await connect(srv)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write(request * (MAX_REQUESTS_PER_CONNECTION + 5))
    answered = 0
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            status, headers, _ = await read_response(reader)
            assert status == 200
            answered += 1
            if headers.get("connection") == "close":
                break
    assert answered == MAX_REQUESTS_PER_CONNECTION
    assert await closed_within(reader, 2)
    writer.close()
    await assert_responsive(srv)


# --- HTTP/2 ------------------------------------------------------------------------------------
async def test_h2c_prior_knowledge_on_the_client_listener(srv: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=srv.listening.client_url, http1=False, http2=True) as h2:
        resp = await h2.get(VERSIONS)
        assert resp.http_version == "HTTP/2"
        assert resp.status_code == 200 and "versions" in resp.json()
        # Errors are Matrix JSON over HTTP/2 too.
        resp = await h2.put("/_matrix/client/v3/nope", content=b"{")
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"
    await assert_responsive(srv)


async def test_http2_over_tls_both_listeners(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    srv = await start_server({"tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key})
    assert srv.listening.schemes == {"client": "https", "federation": "https"}
    trust = ssl.create_default_context(cafile=str(cert))
    for url in (srv.listening.client_url, srv.listening.federation_url):
        async with httpx.AsyncClient(base_url=url, http2=True, verify=trust) as h2:
            resp = await h2.get("/_matrix/federation/v1/version")
            assert resp.http_version == "HTTP/2"
            assert resp.status_code == 200 and resp.json()["server"]["name"] == "dendrite-lite"
            resp = await h2.post("/_matrix/key/v2/query", content=b"x" * 10)
            assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
    async with httpx.AsyncClient(base_url=srv.listening.client_url, verify=trust) as h1:
        resp = await h1.get(VERSIONS)
        assert resp.http_version == "HTTP/1.1" and resp.status_code == 200


# --- the open files limit ------------------------------------------------------------------------
def test_open_files_soft_limit_raised_to_hard(caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        with caplog.at_level(logging.INFO, logger="dendrite_lite.server"):
            raise_open_files_limit()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
        if low < now:
            assert f"open files limit raised from {low} to {now}" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_open_files_limit_that_cannot_be_raised_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def refuse(which: int, limits: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with caplog.at_level(logging.WARNING, logger="dendrite_lite.server"):
        raise_open_files_limit()
    assert "cannot raise the open files limit from 1024 to 4096" in caplog.text
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (1024, 4096)  # the fake; nothing changed
    monkeypatch.undo()
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
