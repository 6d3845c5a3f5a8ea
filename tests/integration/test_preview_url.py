"""GET /media/preview_url through a real server: off by default, refusing every non-public
address however it is reached (an IP literal, a name through a real DNS server, a redirect),
and previewing a permitted page served on loopback (the allow-list lets 127.0.0.1 in).

The pages come from small Quart apps on 127.0.0.1 and 127.0.0.2 that record every request,
so a refusal is shown to happen before any connection, not to be a connection failure."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypercorn.asyncio import serve as hypercorn_serve
from PIL import Image
from quart import Quart, Response, redirect, request

from dendrite_lite.api.listener import ListenerConfig
from tests.conftest import RunningServer
from tests.dns_server import DnsZone
from tests.integration.account_helpers import auth_header, register, running_server
from tests.spec_schema import assert_matches_operation

PREVIEW = "/_matrix/client/v1/media/preview_url"
LEGACY = "/_matrix/media/v3/preview_url"


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


PNG = _png(40, 30)
PAGE = """<!doctype html><html><head>
<meta charset="utf-8">
<title>Ignored: og:title wins</title>
<meta property="og:title" content="Caf\u00e9  &amp; Matrix">
<meta property="og:description" content="A page
 about   previews">
<meta property="og:image" content="/image.png">
<meta name="og:type" content="article">
</head><body>hello</body></html>"""


@dataclasses.dataclass
class PageServer:
    base: str
    seen: list[tuple[str, str]]  # (Host header, path) of every request


def _page_app(seen: list[tuple[str, str]]) -> Quart:
    app = Quart("pages")

    @app.before_request
    async def record() -> None:
        seen.append((request.headers.get("host", ""), request.path))

    @app.get("/page")
    async def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    @app.get("/title-only")
    async def title_only() -> Response:
        return Response("<html><title> Just a  title </title><meta name=description content='d'>", mimetype="text/html")

    @app.get("/image.png")
    async def image() -> Response:
        return Response(PNG, mimetype="image/png")

    @app.get("/redirect")
    async def go() -> Any:
        return redirect(request.args["to"], 302)

    @app.get("/sneaky")
    async def sneaky() -> Response:
        image = request.args["image"]
        return Response(f'<meta property="og:title" content="t"><meta property="og:image" content="{image}">'
                        f'<meta property="og:image:width" content="9">', mimetype="text/html")

    @app.get("/missing")
    async def missing() -> Response:
        return Response("no", status=404)

    @app.get("/big")
    async def big() -> Response:
        return Response(b"<html>" + b"x" * 300_000, mimetype="text/html")

    return app


@pytest.fixture
async def pages() -> AsyncIterator[Callable[[str], Awaitable[PageServer]]]:
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(host: str) -> PageServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen(16)
        sock.setblocking(False)
        seen: list[tuple[str, str]] = []
        stop = asyncio.Event()
        task = asyncio.create_task(hypercorn_serve(
            _page_app(seen), ListenerConfig(sock, None), shutdown_trigger=stop.wait, mode="asgi"  # type: ignore[arg-type]
        ))
        running.append((stop, task))
        return PageServer(f"http://{host}:{sock.getsockname()[1]}", seen)

    yield start
    for stop, task in running:
        stop.set()
        await task


async def _user(srv: RunningServer) -> dict[str, str]:
    return auth_header((await register(srv.client, "previewer"))["access_token"])


async def _preview(srv: RunningServer, headers: dict[str, str], url: str, path: str = PREVIEW) -> httpx.Response:
    return await srv.client.get(path, params={"url": url}, headers=headers)


ALLOW_LOOPBACK = {"media.url_preview_enabled": True, "media.url_preview_ip_allowlist": ("127.0.0.1/32",)}


async def test_off_by_default_answers_404_unrecognized_after_authentication(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        anonymous = await srv.client.get(PREVIEW, params={"url": "https://example.org/"})
        assert (anonymous.status_code, anonymous.json()["errcode"]) == (401, "M_MISSING_TOKEN")
        headers = await _user(srv)
        for path in (PREVIEW, LEGACY):
            resp = await _preview(srv, headers, "https://example.org/", path)
            assert (resp.status_code, resp.json()["errcode"]) == (404, "M_UNRECOGNIZED")


async def test_permitted_page_previewed_with_open_graph(tmp_path: Path, pages: Any) -> None:
    site: PageServer = await pages("127.0.0.1")
    async with running_server(tmp_path, ALLOW_LOOPBACK) as srv:
        headers = await _user(srv)
        resp = await _preview(srv, headers, f"{site.base}/page")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/json"
        og = resp.json()
        assert_matches_operation("client-server/authed-content-repo.yaml", "/media/preview_url", "get", 200, og)
        mxc = og.pop("og:image")
        assert og == {
            "og:title": "Caf\u00e9 & Matrix",
            "og:description": "A page about previews",
            "og:type": "article",
            "og:image:type": "image/png",
            "og:image:width": 40,
            "og:image:height": 30,
            "matrix:image:size": len(PNG),
        }
        # The page's image, stored as our media.
        assert mxc.startswith(f"mxc://{srv.config.server.server_name}/")
        image = await srv.client.get(f"/_matrix/client/v1/media/download/{mxc[6:]}", headers=headers)
        assert (image.status_code, image.content) == (200, PNG)
        title = await _preview(srv, headers, f"{site.base}/title-only", LEGACY)
        assert title.json() == {"og:title": "Just a title", "og:description": "d"}
        direct = (await _preview(srv, headers, f"{site.base}/image.png")).json()
        assert direct.pop("og:image").startswith("mxc://")
        assert direct == {"og:image:type": "image/png", "og:image:width": 40, "og:image:height": 30, "matrix:image:size": len(PNG)}


async def test_answers_are_cached(tmp_path: Path, pages: Any) -> None:
    site: PageServer = await pages("127.0.0.1")
    async with running_server(tmp_path, ALLOW_LOOPBACK) as srv:
        headers = await _user(srv)
        url = f"{site.base}/page"
        answers = await asyncio.gather(*(_preview(srv, headers, url) for _ in range(5)))
        again = await _preview(srv, headers, url)
        assert {a.status_code for a in answers} == {200}
        assert {a.content for a in answers} == {again.content}
        assert [p for _, p in site.seen] == ["/page", "/image.png"]


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "[::1]", "169.254.169.254", "224.0.0.1", "0.0.0.0"])
async def test_non_public_addresses_refused(tmp_path: Path, pages: Any, host: str) -> None:
    site: PageServer = await pages("127.0.0.1")
    port = site.base.rsplit(":", 1)[1]
    async with running_server(tmp_path, {"media.url_preview_enabled": True}) as srv:
        headers = await _user(srv)
        resp = await _preview(srv, headers, f"http://{host}:{port}/page")
        assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
        assert site.seen == []


async def test_name_resolving_to_loopback_refused_and_allowed_by_address(
    tmp_path: Path, pages: Any, dns_zone: DnsZone
) -> None:
    site: PageServer = await pages("127.0.0.1")
    port = site.base.rsplit(":", 1)[1]
    url = f"http://{dns_zone.name('healthy')}:{port}/page"  # A 127.0.0.1 in dnsmasq's zone
    dns = {"media.url_preview_dns_server": f"127.0.0.1:{dns_zone.port}"}
    async with running_server(tmp_path / "a", {"media.url_preview_enabled": True, **dns}) as srv:
        resp = await _preview(srv, await _user(srv), url)
        assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
        assert "127.0.0.1" in resp.json()["error"]
        assert site.seen == []
    async with running_server(tmp_path / "b", {**ALLOW_LOOPBACK, **dns}) as srv:
        resp = await _preview(srv, await _user(srv), url)
        assert resp.status_code == 200, resp.text
        assert resp.json()["og:title"] == "Caf\u00e9 & Matrix"
    # Connected to the checked address, with the name in the Host header.
    assert site.seen[0] == (f"{dns_zone.name('healthy')}:{port}", "/page")


async def test_redirect_to_refused_address_not_followed(tmp_path: Path, pages: Any) -> None:
    site: PageServer = await pages("127.0.0.1")
    inside: PageServer = await pages("127.0.0.2")  # loopback too, but not in the allow-list
    async with running_server(tmp_path, ALLOW_LOOPBACK) as srv:
        headers = await _user(srv)
        resp = await _preview(srv, headers, f"{site.base}/redirect?to={inside.base}/page")
        assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
        assert inside.seen == []
        # A permitted redirect is followed.
        ok = await _preview(srv, headers, f"{site.base}/redirect?to=/title-only")
        assert ok.json()["og:title"] == "Just a title"


async def test_failures_are_502_and_not_cached(tmp_path: Path, pages: Any) -> None:
    site: PageServer = await pages("127.0.0.1")
    overrides = {**ALLOW_LOOPBACK, "media.url_preview_max_bytes": 100_000}
    async with running_server(tmp_path, overrides) as srv:
        headers = await _user(srv)
        for path in ("/missing", "/big", "/redirect?to=/redirect%3Fto%3D/redirect%253Fto%253D/redirect%25253Fto%25253D/page"):
            resp = await _preview(srv, headers, f"{site.base}{path}")
            assert (resp.status_code, resp.json()["errcode"]) == (502, "M_UNKNOWN"), path
        missing = [p for _, p in site.seen if p == "/missing"]
        await _preview(srv, headers, f"{site.base}/missing")
        assert [p for _, p in site.seen if p == "/missing"] == missing * 2
        bad = await _preview(srv, headers, "ftp://example.org/")
        assert (bad.status_code, bad.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_image_at_a_refused_address_is_left_out(tmp_path: Path, pages: Any) -> None:
    site: PageServer = await pages("127.0.0.1")
    inside: PageServer = await pages("127.0.0.2")
    async with running_server(tmp_path, ALLOW_LOOPBACK) as srv:
        headers = await _user(srv)
        resp = await srv.client.get(
            PREVIEW, params={"url": f"{site.base}/sneaky?image={inside.base}/image.png"}, headers=headers
        )
        assert (resp.status_code, resp.json()) == (200, {"og:title": "t"})
        assert inside.seen == []
