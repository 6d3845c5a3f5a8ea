"""For doctor tests: certificates with chosen names and dates (openssl CLI), and a small HTTPS
server on loopback whose answers each test chooses (aiohttp), to play a misconfigured peer.

    cert, key = make_cert(tmp_path, "IP:127.0.0.1", not_after_days=-1)   # expired yesterday
    peer = await FakePeer.start(cert, key, {"/_matrix/key/v2/server": handler})
    peer.server_name  # "127.0.0.1:<port>"

    proxy = await ReverseProxy.start(cert, key, port, "http://127.0.0.1:8448", strip_authorization=True)
"""

from __future__ import annotations

import datetime
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from dendrite_lite.crypto.keys import ServerKey, new_server_key
from dendrite_lite.crypto.signing import sign_json
from dendrite_lite.delegation.doctor import Finding, Status

__all__ = ["FakePeer", "Handler", "ReverseProxy", "failed", "key_document", "make_cert", "only"]

Handler = Callable[["FakePeer", web.Request], Awaitable[web.StreamResponse]]

_CA_CONFIG = """\
[ca]
default_ca = d
[d]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
"""


def make_cert(
    directory: Path, san: str, *, cn: str | None = None, not_before_days: float = -1,
    not_after_days: float = 90,
) -> tuple[Path, Path]:
    """A self-signed certificate for `san` ("IP:127.0.0.1", "DNS:a.test,DNS:b.test") valid
    from now + not_before_days to now + not_after_days, and its key. `openssl ca` because
    `openssl req -x509` (OpenSSL 3.0) cannot date a certificate in the past."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("01\n")
    (directory / "ca.cnf").write_text(_CA_CONFIG.format(dir=directory))
    cert, key, req = directory / "cert.pem", directory / "key.pem", directory / "req.pem"
    common_name = cn or san.split(",")[0].split(":", 1)[1]
    now = datetime.datetime.now(datetime.UTC)

    def stamp(days: float) -> str:
        return (now + datetime.timedelta(days=days)).strftime("%Y%m%d%H%M%SZ")

    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", f"/CN={common_name}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(req)],
        check=True, capture_output=True,
    )
    subprocess.run(
        ["openssl", "ca", "-batch", "-config", str(directory / "ca.cnf"), "-selfsign",
         "-keyfile", str(key), "-in", str(req), "-out", str(cert), "-notext",
         "-startdate", stamp(not_before_days), "-enddate", stamp(not_after_days)],
        check=True, capture_output=True,
    )
    return cert, key


def only(findings: list[Finding], check: str) -> Finding:
    """The one finding of `check`."""
    matching = [f for f in findings if f.check == check]
    assert len(matching) == 1, (check, findings)
    return matching[0]


def failed(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings if f.status is Status.FAIL]


def key_document(server_name: str, key: ServerKey, *, valid_for_ms: int = 3_600_000,
                 signed_as: str | None = None, now_ms: int | None = None) -> dict[str, Any]:
    now = now_ms if now_ms is not None else int(datetime.datetime.now().timestamp() * 1000)
    body = {
        "server_name": server_name,
        "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
        "old_verify_keys": {},
        "valid_until_ts": now + valid_for_ms,
    }
    return sign_json(body, signed_as or server_name, key)


@dataclass
class FakePeer:
    runner: web.AppRunner
    port: int
    key: ServerKey

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, cert: Path, key: Path, routes: Mapping[str, Handler]) -> FakePeer:
        """Serves `routes` (path -> handler) over TLS, plus by default a valid key document,
        version and profile query (no such user: the doctor's signed request) for 127.0.0.1:<port>."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        app = web.Application()
        peer_box: list[FakePeer] = []
        defaults: dict[str, Handler] = {
            "/_matrix/key/v2/server": _valid_keys,
            "/_matrix/federation/v1/version": _version,
            "/_matrix/federation/v1/query/profile": _no_such_user,
        }
        for path, handler in {**defaults, **routes}.items():
            def bind(h: Handler = handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
                async def route(request: web.Request) -> web.StreamResponse:
                    return await h(peer_box[0], request)
                return route
            app.router.add_get(path, bind())
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        peer = cls(runner, port, new_server_key())
        peer_box.append(peer)
        return peer

    async def stop(self) -> None:
        await self.runner.cleanup()


async def _valid_keys(peer: FakePeer, request: web.Request) -> web.StreamResponse:
    return web.json_response(key_document(peer.server_name, peer.key))


async def _no_such_user(peer: FakePeer, request: web.Request) -> web.StreamResponse:
    return web.json_response({"errcode": "M_NOT_FOUND", "error": "Profile not found"}, status=404)


async def _version(peer: FakePeer, request: web.Request) -> web.StreamResponse:
    return web.json_response({"server": {"name": "fake-peer", "version": "0.1"}})


_NGINX_404 = "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center></body></html>"


@dataclass
class ReverseProxy:
    """A TLS reverse proxy in front of a plain-HTTP upstream, misconfigured as asked: paths
    outside `forward` get nginx's HTML 404, and `strip_authorization` drops the header (as a
    proxy with `proxy_set_header Authorization "";` does)."""

    runner: web.AppRunner
    upstream: httpx.AsyncClient

    @classmethod
    async def start(
        cls, cert: Path, key: Path, port: int, upstream: str, *, forward: tuple[str, ...] = ("/_matrix/",),
        strip_authorization: bool = False,
    ) -> ReverseProxy:
        client = httpx.AsyncClient(base_url=upstream, timeout=10)

        async def proxy(request: web.Request) -> web.StreamResponse:
            if not request.path.startswith(forward):
                return web.Response(status=404, text=_NGINX_404, content_type="text/html")
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            if strip_authorization:
                headers.pop("Authorization", None)
            answer = await client.request(
                request.method, request.raw_path, headers=headers, content=await request.read(),
            )
            keep = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "date")}
            return web.Response(status=answer.status_code, body=answer.content, headers=keep)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", proxy)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
        return cls(runner, client)

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.upstream.aclose()
