"""The outbound HTTP/1.1 client (http_client.py) against real servers on loopback: keep-alive,
stale pooled connections, size limits, timeouts, refused connections, TLS with SNI, bad HTTP."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from dendrite_lite.federation.client import make_ssl_context
from dendrite_lite.http_client import (
    ConnectFailed,
    HttpClient,
    HttpError,
    HttpRequest,
    ResponseTooLarge,
)
from tests.interop.synapse_server import free_port, write_self_signed_cert

# (method, target, headers, body) -> (status, headers, body parts); a part may be a coroutine
# function to await between parts (a slow server).
Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, list[tuple[str, str]], list[bytes]]]


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    close_after_each: bool = False
    delay_s: float = 0.0
    raw_answer: bytes | None = None


async def _serve_one_connection(srv: Server, handler: Handler, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
    srv.connections += 1
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                request = event
                body = b""
                while not isinstance(event := conn.next_event(), h11.EndOfMessage):
                    if event is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                    elif isinstance(event, h11.Data):
                        body += event.data
                headers = {k.decode(): v.decode() for k, v in request.headers}
                srv.requests.append((request.method.decode(), request.target.decode(), headers, body))
                if srv.raw_answer is not None:
                    writer.write(srv.raw_answer)
                    await writer.drain()
                    return
                await asyncio.sleep(srv.delay_s)
                status, out_headers, parts = handler(
                    request.method.decode(), request.target.decode(), headers, body
                )
                writer.write(conn.send(h11.Response(status_code=status, headers=out_headers)))
                for part in parts:
                    writer.write(conn.send(h11.Data(data=part)))
                    await writer.drain()
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if srv.close_after_each:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (ConnectionError, h11.ProtocolError):
        return
    finally:
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        srv = Server(free_port())

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _serve_one_connection(srv, handler, reader, writer)

        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: srv.sni.append(name)  # type: ignore[assignment,misc]
        servers.append(await asyncio.start_server(on_connect, "127.0.0.1", srv.port, ssl=tls))
        return srv

    yield start
    for s in servers:
        s.close()


def ok(body: bytes = b'{"ok":true}', headers: list[tuple[str, str]] | None = None) -> Handler:
    def handler(method: str, target: str, h: dict[str, str], b: bytes):
        return 200, [("Content-Length", str(len(body))), *(headers or [])], [body]
    return handler


async def test_requests_reuse_one_connection_and_send_host_and_body(serve) -> None:
    srv = await serve(ok())
    client = HttpClient(make_ssl_context(False))
    url = f"http://127.0.0.1:{srv.port}"
    first = await client.send(HttpRequest("GET", url + "/a?b=c%20d"), 1000)
    second = await client.send(
        HttpRequest("PUT", url + "/put", {"Host": "them.example", "X-Test": "1"}, b'{"x":1}'), 1000
    )
    assert (first.status, first.body, first.headers["content-length"]) == (200, b'{"ok":true}', "11")
    assert second.body == b'{"ok":true}'
    assert srv.connections == 1
    (m1, t1, h1, b1), (m2, t2, h2, b2) = srv.requests
    assert (m1, t1, h1["host"], b1) == ("GET", "/a?b=c%20d", f"127.0.0.1:{srv.port}", b"")
    assert (m2, t2, h2["host"], h2["x-test"], h2["content-length"], b2) == (
        "PUT", "/put", "them.example", "1", "7", b'{"x":1}'
    )
    assert "accept-encoding" not in h1  # peers send identity bodies
    await client.aclose()


async def test_a_connection_the_peer_closed_while_idle_is_replaced(serve) -> None:
    srv = await serve(ok())
    srv.close_after_each = True
    client = HttpClient(make_ssl_context(False))
    url = f"http://127.0.0.1:{srv.port}/x"
    for _ in range(3):
        assert (await client.send(HttpRequest("GET", url), 1000)).status == 200
        await asyncio.sleep(0.05)  # the server's close arrives while the connection is pooled
    assert srv.connections == 3 and len(srv.requests) == 3
    await client.aclose()


async def test_size_limits_declared_and_streamed(serve) -> None:
    declared = await serve(ok(b"a" * 2000))

    def chunked(method: str, target: str, h: dict[str, str], b: bytes):
        return 200, [("Transfer-Encoding", "chunked")], [b"a" * 400] * 5

    streamed = await serve(chunked)
    client = HttpClient(make_ssl_context(False))
    with pytest.raises(ResponseTooLarge):
        await client.send(HttpRequest("GET", f"http://127.0.0.1:{declared.port}/"), 1000)
    with pytest.raises(ResponseTooLarge):
        await client.send(HttpRequest("GET", f"http://127.0.0.1:{streamed.port}/"), 1000)
    whole = await client.send(HttpRequest("GET", f"http://127.0.0.1:{streamed.port}/"), 2000)
    assert whole.body == b"a" * 2000
    # A connection left mid-answer is never reused.
    assert streamed.connections == 2
    await client.aclose()


async def test_refused_connection_and_timeouts(serve) -> None:
    client = HttpClient(make_ssl_context(False))
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await client.send(HttpRequest("GET", f"http://127.0.0.1:{free_port()}/"), 1000)
    slow = await serve(ok())
    slow.delay_s = 2.0
    with pytest.raises(HttpError, match="no answer within 0.2 s"):
        await client.send(HttpRequest("GET", f"http://127.0.0.1:{slow.port}/", timeout_s=0.2), 1000)
    with pytest.raises(ConnectFailed, match="unsupported URL"):
        await client.send(HttpRequest("GET", "ftp://127.0.0.1/"), 1000)
    await client.aclose()


async def test_bad_http_from_the_peer_is_an_error(serve) -> None:
    srv = await serve(ok())
    srv.raw_answer = b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"
    client = HttpClient(make_ssl_context(False))
    with pytest.raises(HttpError, match="connection failed"):
        await client.send(HttpRequest("GET", f"http://127.0.0.1:{srv.port}/"), 1000)
    srv.raw_answer = b""  # closes without answering: not a stale pooled connection, an error
    with pytest.raises(HttpError):
        await client.send(HttpRequest("GET", f"http://127.0.0.1:{srv.port}/"), 1000)
    await client.aclose()


async def test_tls_sends_the_sni_asked_for_and_verifies_when_asked(serve, tmp_path: Path) -> None:
    files = write_self_signed_cert(tmp_path)
    if files is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    srv = await serve(ok(), tls=server_tls)
    url = f"https://127.0.0.1:{srv.port}/"
    unverified = HttpClient(make_ssl_context(False))
    assert (await unverified.send(HttpRequest("GET", url, sni="them.example.org"), 1000)).status == 200
    assert (await unverified.send(HttpRequest("GET", url), 1000)).status == 200
    # Pooled per (address, SNI): the second request needed a connection of its own.
    assert srv.sni == ["them.example.org", None]
    trusting = HttpClient(make_ssl_context(True, str(cert)))
    assert (await trusting.send(HttpRequest("GET", url), 1000)).status == 200
    with pytest.raises(ConnectFailed, match="certificate"):  # the certificate is for 127.0.0.1
        await trusting.send(HttpRequest("GET", url, sni="them.example.org"), 1000)
    strict = HttpClient(make_ssl_context(True))  # the system CAs do not know this certificate
    with pytest.raises(ConnectFailed, match="certificate"):
        await strict.send(HttpRequest("GET", url), 1000)
    for c in (unverified, trusting, strict):
        await c.aclose()
