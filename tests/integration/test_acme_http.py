"""The port-80 listener of tls.mode = "acme" (api/acme_http.py), served by a real Hypercorn on a
loopback port: HTTP-01 answers, the well-known files, and the redirect to https."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from hypercorn.asyncio import serve as hypercorn_serve

from dendrite_lite.api.acme_http import build_acme_http_app
from dendrite_lite.api.listener import ListenerConfig
from dendrite_lite.config import Config
from dendrite_lite.tls.http01 import Http01Answers
from tests.conftest import RunningServer, make_config, with_overrides

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = f"{TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@dataclasses.dataclass
class Port80:
    answers: Http01Answers
    client: httpx.AsyncClient
    port: int


@pytest.fixture
async def serve_port80() -> AsyncIterator[Callable[[Config], object]]:
    stops: list[tuple[asyncio.Event, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(config: Config) -> Port80:
        answers = Http01Answers()
        app = build_acme_http_app(config, answers)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        stop = asyncio.Event()
        serving = hypercorn_serve(
            app, ListenerConfig(sock, None), shutdown_trigger=stop.wait, mode="asgi"  # type: ignore[arg-type]
        )
        task = asyncio.create_task(serving)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        stops.append((stop, task, client))
        return Port80(answers, client, port)

    yield start
    for stop, task, client in stops:
        await client.aclose()
        stop.set()
        await task


@pytest.fixture
async def port80(serve_port80: Callable[[Config], object], tmp_path: Path) -> Port80:
    config = make_config(tmp_path, {"server.public_baseurl": "https://matrix.example.org:8443/"})
    return await serve_port80(config)  # type: ignore[no-any-return,misc]


async def test_challenge_answered_byte_exact_as_text_plain(port80: Port80) -> None:
    port80.answers.put(TOKEN, KEY_AUTHORIZATION)
    resp = await port80.client.get(f"/.well-known/acme-challenge/{TOKEN}")
    assert resp.status_code == 200
    assert resp.content == KEY_AUTHORIZATION.encode()
    assert resp.headers["content-type"] == "text/plain"


async def test_challenge_gone_once_removed(port80: Port80) -> None:
    port80.answers.put(TOKEN, KEY_AUTHORIZATION)
    port80.answers.remove(TOKEN)
    resp = await port80.client.get(f"/.well-known/acme-challenge/{TOKEN}")
    assert resp.status_code == 404
    assert resp.json() == {
        "errcode": "M_NOT_FOUND", "error": "No ACME challenge is pending for this token",
    }


@pytest.mark.parametrize("token", ["abc.def", "abc%2Fdef", "abc%20def", "ab=c"])
async def test_token_outside_base64url_is_404(port80: Port80, token: str) -> None:
    # Answers keyed by such strings never match: a token is looked up only in its own alphabet.
    port80.answers.put(token.replace("%2F", "/").replace("%20", " "), "x")
    resp = await port80.client.get(f"/.well-known/acme-challenge/{token}")
    assert resp.status_code == 404
    assert resp.json()["errcode"] == "M_NOT_FOUND"


async def test_well_known_identical_to_the_tls_listeners(
    serve_port80: Callable[[Config], object], server: RunningServer
) -> None:
    port80: Port80 = await serve_port80(server.config)  # type: ignore[misc]
    for path in ("/.well-known/matrix/server", "/.well-known/matrix/client"):
        ours = await port80.client.get(path)
        theirs = await server.client.get(path)
        assert ours.status_code == theirs.status_code == 200
        assert ours.content == theirs.content
        for header in ("content-type", "access-control-allow-origin"):
            assert ours.headers[header] == theirs.headers[header]


@pytest.mark.parametrize(
    ("method", "status"),
    [("GET", 301), ("HEAD", 301), ("POST", 308), ("PUT", 308), ("DELETE", 308), ("PROPFIND", 308)],
)
async def test_other_paths_redirect_to_https(port80: Port80, method: str, status: int) -> None:
    resp = await port80.client.request(
        method, "/_matrix/client/v3/login?a=1&b=%2F", headers={"Host": "matrix.example.org:80"},
        content=b"{}" if status == 308 else None,
    )
    assert resp.status_code == status
    assert resp.headers["location"] == "https://matrix.example.org/_matrix/client/v3/login?a=1&b=%2F"


async def test_root_and_encoded_path_kept_as_sent(port80: Port80) -> None:
    resp = await port80.client.get("/", headers={"Host": "Example.org"})
    assert resp.headers["location"] == "https://example.org/"
    resp = await port80.client.get("/_matrix/media/v3/download/a%2Fb", headers={"Host": "example.org"})
    assert resp.headers["location"] == "https://example.org/_matrix/media/v3/download/a%2Fb"


async def test_post_to_a_challenge_path_redirects(port80: Port80) -> None:
    resp = await port80.client.post(f"/.well-known/acme-challenge/{TOKEN}", headers={"Host": "a.example"})
    assert resp.status_code == 308
    assert resp.headers["location"] == f"https://a.example/.well-known/acme-challenge/{TOKEN}"


async def test_ipv6_host_keeps_its_brackets(port80: Port80) -> None:
    resp = await port80.client.get("/x", headers={"Host": "[2001:db8::1]:80"})
    assert resp.headers["location"] == "https://[2001:db8::1]/x"


@pytest.mark.parametrize(
    "host",
    ["evil.example/", "evil.example/x", "user@evil.example", "evil.example:80@a", "[::g]", "a b", "",
     "example.org:0", "example.org:99999"],
)
async def test_crafted_host_falls_back_to_public_baseurl(port80: Port80, host: str) -> None:
    resp = await port80.client.get("/path?q=1", headers={"Host": host})
    assert resp.status_code == 301
    assert resp.headers["location"] == "https://matrix.example.org/path?q=1"


async def test_no_host_header_falls_back_to_public_baseurl(port80: Port80) -> None:
    # HTTP/1.0 allows a request without Host (HTTP/1.1 requires one); httpx always sends it.
    reader, writer = await asyncio.open_connection("127.0.0.1", port80.port)
    writer.write(b"GET /a?b HTTP/1.0\r\n\r\n")
    head = (await reader.read()).split(b"\r\n\r\n")[0].decode()
    writer.close()
    assert head.startswith("HTTP/1.1 301")
    assert "\r\nlocation: https://matrix.example.org/a?b\r\n" in head.lower()


async def test_ipv6_public_baseurl_fallback_is_bracketed(
    serve_port80: Callable[[Config], object], tmp_path: Path
) -> None:
    config = with_overrides(make_config(tmp_path), {"server.public_baseurl": "https://[2001:db8::2]/"})
    port80: Port80 = await serve_port80(config)  # type: ignore[misc]
    resp = await port80.client.get("/", headers={"Host": "x/y"})
    assert resp.headers["location"] == "https://[2001:db8::2]/"


async def test_options_is_a_cors_preflight_not_a_redirect(port80: Port80) -> None:
    resp = await port80.client.options("/.well-known/matrix/client")
    assert resp.status_code == 204
    assert resp.headers["access-control-allow-origin"] == "*"
