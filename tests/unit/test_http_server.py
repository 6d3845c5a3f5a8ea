"""The HTTP/1.1 server (api/http_server.py) on a loopback port, driven with raw sockets where
the wire matters (pipelining, bad requests, 100-continue) and with httpx elsewhere."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from dendrite_lite.api import http_server
from dendrite_lite.api.http_server import HttpServer

Running = tuple[str, int, HttpServer, asyncio.Event]


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it was asked: method, path, query, body, a header."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(0.5)
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = json.dumps({
        "method": scope["method"], "path": scope["path"], "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(), "body": body.decode(),
        "x": dict(scope["headers"]).get(b"x-test", b"").decode(), "scheme": scope["scheme"],
        "client": scope["client"][0],
    }).encode()
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    started: list[tuple[asyncio.Task[None], asyncio.Event]] = []

    async def start(app: Any = echo, graceful_timeout_s: float = 5.0) -> Running:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        server = HttpServer(app, ssl_context=None, graceful_timeout_s=graceful_timeout_s)
        stop = asyncio.Event()
        task = asyncio.create_task(server.serve(sock, stop))
        started.append((task, stop))
        await asyncio.sleep(0.01)
        return "127.0.0.1", sock.getsockname()[1], server, stop

    yield start
    for task, stop in started:
        stop.set()
        await asyncio.wait_for(task, 10)


async def exchange(port: int, data: bytes, *, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if until_close:
        out = await asyncio.wait_for(reader.read(), 5)
    else:
        out = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return out


async def test_request_scope_and_keep_alive(serve) -> None:
    host, port, _, _ = await serve()
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        first = await http.put("/a%2Fb/c?x=1&y=%20", content=b'{"k":1}', headers={"X-Test": "hi"})
        second = await http.get("/again")
    assert first.status_code == 201 and first.headers["date"].endswith(" GMT")
    assert first.json() == {
        "method": "PUT", "path": "/a/b/c", "raw_path": "/a%2Fb/c", "query": "x=1&y=%20",
        "body": '{"k":1}', "x": "hi", "scheme": "http", "client": "127.0.0.1",
    }
    assert second.json()["path"] == "/again"
    assert "connection" not in first.headers  # kept alive


async def test_pipelined_requests_are_answered_in_order(serve) -> None:
    _, port, _, _ = await serve()
    out = await exchange(port, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
                               b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 201 Created") == 2
    assert out.index(b'"path": "/slow"') < out.index(b'"path": "/second"')
    assert b"connection: close" in out.split(b'"path": "/slow"')[1]


async def test_bad_http_and_oversized_headers_get_matrix_errors(serve) -> None:
    _, port, _, _ = await serve()
    out = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request")
    assert json.loads(out.split(b"\r\n\r\n", 1)[1]) == {
        "errcode": "M_UNRECOGNIZED", "error": "Invalid HTTP request"
    }
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * (http_server.MAX_HEAD_BYTES + 10) + b"\r\n\r\n"
    out = await exchange(port, big)
    assert out.startswith(b"HTTP/1.1 431 ")
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["errcode"] == "M_TOO_LARGE"


async def test_chunked_body_expect_continue_and_http10(serve) -> None:
    _, port, _, _ = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["body"] == "abcde"
    # HTTP/1.0 without keep-alive: closed after the answer (read() returns at EOF).
    out = await exchange(port, b"GET /old HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 201") and b"connection: close" in out


async def test_app_errors_are_500_json_and_streams_are_chunked(serve) -> None:
    host, port, _, _ = await serve()
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        boom = await http.get("/boom")
        stream = await http.get("/stream")
        after = await http.get("/fine")
    assert boom.status_code == 500
    assert boom.json() == {"errcode": "M_UNKNOWN", "error": "Internal server error"}
    assert stream.headers["transfer-encoding"] == "chunked" and stream.content == b"one,two,three"
    assert after.status_code == 201


async def test_idle_connections_close_after_the_keep_alive_time(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "KEEP_ALIVE_S", 0.2)
    _, port, server, _ = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"}"), 5)
    assert len(server.connections) == 1
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed by the server
    writer.close()
    assert not server.connections
    # A head that never ends is no request in progress: the same clock applies.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_a_client_gone_mid_body_is_a_disconnect_for_the_app(serve) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        done.set()

    _, port, _, _ = await serve(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.wait_for(done.wait(), 5)
    assert seen == ["http.request", "http.disconnect"]


async def test_stop_finishes_requests_in_progress_and_closes_idle_ones(serve) -> None:
    host, port, server, stop = await serve()
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        slow = asyncio.create_task(http.get("/slow"))
        await asyncio.sleep(0.1)
        stop.set()
        answer = await slow
    assert answer.status_code == 201 and answer.headers["connection"] == "close"
    assert await asyncio.wait_for(idle_reader.read(), 2) == b""
    idle_writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_stop_gives_up_on_requests_past_the_graceful_time(serve) -> None:
    started = asyncio.Event()

    async def hang(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(60)

    _, port, server, stop = await serve(hang, graceful_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # aborted, no answer
    writer.close()
