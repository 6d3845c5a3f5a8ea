"""`doctor` checks against real servers on loopback: a healthy dendrite-lite over TLS, and small
aiohttp peers misconfigured one way each (key document, certificate, well-known, the client
well-known)."""

from __future__ import annotations

import email.utils
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from dendrite_lite.config import Config
from dendrite_lite.crypto.keys import new_server_key, write_signing_key
from dendrite_lite.delegation.discovery import SrvRecord
from dendrite_lite.delegation.doctor import (
    DoctorNetwork,
    Finding,
    LocalSetup,
    Status,
    diagnose,
    make_trust,
    worst,
)
from tests.conftest import StartServer
from tests.integration.doctor_helpers import (
    FakePeer,
    Handler,
    ReverseProxy,
    failed,
    key_document,
    make_cert,
    only,
)
from tests.interop.synapse_server import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


class NoSrv:
    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        return []


class NoCname:
    async def cname_of(self, host: str) -> str | None:
        return None


def network(ca: Path, overrides: dict[tuple[str, int], tuple[str, int]] | None = None) -> DoctorNetwork:
    return DoctorNetwork(make_trust([str(ca)]), NoSrv(), NoCname(), overrides or {}, timeout_s=5)


PeerFactory = Callable[..., Awaitable[FakePeer]]


@pytest.fixture
async def fake_peer() -> AsyncIterator[PeerFactory]:
    started: list[FakePeer] = []

    async def start(cert: Path, key: Path, routes: dict[str, Handler] | None = None) -> FakePeer:
        peer = await FakePeer.start(cert, key, routes or {})
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop()


async def test_healthy_dendrite_lite_over_tls(start_server: StartServer, tmp_path: Path) -> None:
    """Federation, client discovery (dendrite-lite serves /.well-known/matrix/client itself) and
    the local setup it was started with: all OK."""
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")
    port, client_port = free_port(), free_port()
    srv = await start_server({
        "server.server_name": f"127.0.0.1:{port}", "listen.federation": f"127.0.0.1:{port}",
        "server.public_baseurl": f"https://127.0.0.1:{client_port}/", "listen.client": f"127.0.0.1:{client_port}",
        "tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key, "server.public_ip": "127.0.0.1",
    })
    # Clients look for https://127.0.0.1/.well-known/matrix/client, on port 443: the client listener.
    net = network(cert, {("127.0.0.1", 443): ("127.0.0.1", client_port)})
    findings = await diagnose(srv.config.server.server_name, net, local_setup(srv.config))
    assert worst(findings) is Status.OK, [f for f in findings if f.status is not Status.OK]
    assert only(findings, "client.well_known").why == (
        f"https://127.0.0.1/.well-known/matrix/client: m.homeserver.base_url is 'https://127.0.0.1:{client_port}'."
    )
    assert only(findings, "client.cors").status is Status.OK
    assert only(findings, "client.versions").why.startswith(
        f"https://127.0.0.1:{client_port}/_matrix/client/versions lists "
    )
    # No [turn] or [calls] configured: said, not failed.
    assert [(f.check, f.status) for f in findings if f.area == "calls"] == [
        ("calls.turn", Status.OK), ("calls.livekit", Status.OK),
    ]
    assert [f.check for f in findings if f.area == "local"] == [
        "local.federation_port", "local.public_baseurl", "local.registration", "local.signing_key", "local.database", "local.disk",
    ]
    assert only(findings, "tls.name").why == f"127.0.0.1:{port}: the certificate is valid for 127.0.0.1."
    assert f"Key {srv.key.key_id} signs the key document." == only(findings, "keys.signature").why
    assert "runs dendrite-lite" in only(findings, "federation.version").why
    assert only(findings, "federation.clock").status is Status.OK
    assert "Not consulted" in only(findings, "well_known").why
    assert only(findings, "federation.signed_request").why == (
        f"A signed GET /_matrix/federation/v1/query/profile from 127.0.0.1:{port} to itself reached the"
        " homeserver and its signature was accepted (it answered 404 M_NOT_FOUND for a user that does not exist)."
    )
    assert only(findings, "outbox").why == "No destination is failing (0 servers sent to so far)."
    assert only(findings, "certificate.names").why == f"tls.cert_path {cert} is valid for 127.0.0.1."
    assert only(findings, "certificate.expiry").why.startswith(f"tls.cert_path {cert} is valid until ")
    assert [f.why for f in findings if f.check == "ports.open"] == [
        f"127.0.0.1:{p} ({what}) accepts connections (tested from this machine)."
        for p, what in sorted([(port, "federation, where peers connect"), (client_port, "the client API at public_baseurl")])
    ]


def local_setup(config: Config) -> LocalSetup:
    """The server's own setup, with a disk that is never full."""
    return LocalSetup(config, disk_usage=lambda path: shutil.disk_usage(path)._replace(free=10 << 30))


async def diagnose_behind_proxy(
    start_server: StartServer, tmp_path: Path, **proxy_options: object
) -> tuple[list[Finding], int]:
    """A dendrite-lite speaking plain HTTP behind a TLS reverse proxy configured with
    `proxy_options`; its own doctor's findings, and the upstream port."""
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")
    port, upstream = free_port(), free_port()
    srv = await start_server({
        "server.server_name": f"127.0.0.1:{port}", "listen.federation": f"127.0.0.1:{upstream}", "tls.mode": "proxy",
    })
    proxy = await ReverseProxy.start(cert, key, port, f"http://127.0.0.1:{upstream}", **proxy_options)  # type: ignore[arg-type]
    try:
        return await diagnose(srv.config.server.server_name, network(cert), local_setup(srv.config)), upstream
    finally:
        await proxy.stop()


async def test_behind_a_healthy_proxy_the_signed_request_is_accepted(start_server: StartServer, tmp_path: Path) -> None:
    findings, _ = await diagnose_behind_proxy(start_server, tmp_path)
    assert failed(findings) == []
    assert only(findings, "federation.signed_request").status is Status.OK


async def test_proxy_stripping_the_authorization_header(start_server: StartServer, tmp_path: Path) -> None:
    findings, upstream = await diagnose_behind_proxy(start_server, tmp_path, strip_authorization=True)
    assert failed(findings) == ["federation.signed_request"]
    finding = only(findings, "federation.signed_request")
    assert "was refused with 401 M_UNAUTHORIZED (missing X-Matrix Authorization header): a reverse proxy strips the" \
        " Authorization header" in finding.why
    assert f"      proxy_pass http://127.0.0.1:{upstream};  # nothing after the port" in (finding.fix or "")
    assert (finding.fix or "").endswith(f"reverse_proxy /_matrix/* 127.0.0.1:{upstream}")


async def test_proxy_that_drops_matrix_federation(start_server: StartServer, tmp_path: Path) -> None:
    """Only the key endpoint is forwarded (a `location /_matrix/key/` block): the key checks
    pass, the federation API answers nginx's HTML 404."""
    findings, upstream = await diagnose_behind_proxy(start_server, tmp_path, forward=("/_matrix/key/",))
    assert failed(findings) == ["federation.version", "federation.signed_request"]
    assert only(findings, "keys.signature").status is Status.OK
    finding = only(findings, "federation.signed_request")
    assert finding.why.endswith(
        "to itself got HTTP 404 without a Matrix error: /_matrix/federation is not forwarded to dendrite-lite,"
        " so peers cannot send it messages, invites or joins."
    )
    assert "forward all of /_matrix/ to dendrite-lite" in (finding.fix or "")
    assert f"proxy_pass http://127.0.0.1:{upstream};" in (finding.fix or "")


async def test_public_address_reaches_a_server_with_another_key(start_server: StartServer, tmp_path: Path) -> None:
    """The key file was replaced while an old process keeps serving with the old key (or the
    address reaches another install): the signed request is refused for an unknown key."""
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")
    port = free_port()
    srv = await start_server({
        "server.server_name": f"127.0.0.1:{port}", "listen.federation": f"127.0.0.1:{port}",
        "tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key,
    })
    other = new_server_key()
    write_signing_key(srv.config.signing_key_path, other, overwrite=True)
    findings = await diagnose(srv.config.server.server_name, network(cert), local_setup(srv.config))
    assert failed(findings) == ["federation.signed_request"]
    finding = only(findings, "federation.signed_request")
    assert f"was refused with 401 M_UNAUTHORIZED (unknown key {other.key_id} of 127.0.0.1:{port})" in finding.why
    assert "or the address reaches another server with another signing key" in finding.why


async def test_key_document_for_another_server(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")

    async def other_name(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response(key_document("other.example", peer.key))

    peer = await fake_peer(cert, key, {"/_matrix/key/v2/server": other_name})
    findings = await diagnose(peer.server_name, network(cert))
    assert failed(findings) == ["keys.server_name"]
    finding = only(findings, "keys.server_name")
    assert finding.why == f"The key document is for 'other.example', not '{peer.server_name}': peers reject its keys."
    assert f'server_name = "{peer.server_name}"' in (finding.fix or "")


async def test_bad_self_signature(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")

    async def tampered(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        doc = key_document(peer.server_name, peer.key)
        doc["valid_until_ts"] += 1  # changed after signing
        return web.json_response(doc)

    peer = await fake_peer(cert, key, {"/_matrix/key/v2/server": tampered})
    findings = await diagnose(peer.server_name, network(cert))
    assert failed(findings) == ["keys.signature"]
    finding = only(findings, "keys.signature")
    assert finding.why == (
        f"Key {peer.key.key_id}: bad signature from {peer.server_name} ({peer.key.key_id}); peers reject this key."
    )
    assert "generate-keys" in (finding.fix or "")


async def test_expired_key_document(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")

    async def expired(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response(key_document(peer.server_name, peer.key, valid_for_ms=-60_000))

    peer = await fake_peer(cert, key, {"/_matrix/key/v2/server": expired})
    findings = await diagnose(peer.server_name, network(cert))
    assert failed(findings) == ["keys.valid_until"]
    assert only(findings, "keys.valid_until").why.startswith("The key document expired 6")


async def test_expired_certificate(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "IP:127.0.0.1", not_before_days=-30, not_after_days=-1)
    peer = await fake_peer(cert, key)
    findings = await diagnose(peer.server_name, network(cert))
    finding = only(findings, "tls.expiry")
    assert finding.status is Status.FAIL
    assert finding.why == f"{peer.server_name}: certificate has expired; peers refuse to connect."
    assert (finding.fix or "").startswith("Renew the certificate")
    # The federation client refuses it too: the endpoint checks fail the same way.
    assert only(findings, "keys.fetch").status is Status.FAIL


async def test_certificate_expiring_soon_warns(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "IP:127.0.0.1", not_after_days=5)
    peer = await fake_peer(cert, key)
    findings = await diagnose(peer.server_name, network(cert))
    assert failed(findings) == []
    finding = only(findings, "tls.expiry")
    assert finding.status is Status.WARN
    assert "expires in 4.9 days" in finding.why or "expires in 5.0 days" in finding.why


async def test_certificate_for_another_name(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "DNS:wrong.example")
    peer = await fake_peer(cert, key)
    findings = await diagnose(peer.server_name, network(cert))
    finding = only(findings, "tls.name")
    assert finding.status is Status.FAIL
    assert finding.why == f"{peer.server_name}: IP address mismatch, certificate is not valid for '127.0.0.1'."
    assert "subjectAltName includes the IP address 127.0.0.1" in (finding.fix or "")


async def test_untrusted_certificate(fake_peer: PeerFactory, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "a", "IP:127.0.0.1")
    other_ca, _ = make_cert(tmp_path / "b", "IP:127.0.0.1")
    peer = await fake_peer(cert, key)
    findings = await diagnose(peer.server_name, network(other_ca))
    finding = only(findings, "tls.chain")
    assert finding.status is Status.FAIL
    assert "self-signed certificate" in finding.why
    assert "full chain" in (finding.fix or "")


async def well_known_peer(fake_peer: PeerFactory, tmp_path: Path, host: str, handler: Handler) -> tuple[FakePeer, Path]:
    cert, key = make_cert(tmp_path, f"DNS:{host}")
    peer = await fake_peer(cert, key, {"/.well-known/matrix/server": handler, "/elsewhere": handler})
    return peer, cert


async def test_well_known_redirect_loop(fake_peer: PeerFactory, tmp_path: Path) -> None:
    async def loop(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        other = "/elsewhere" if request.path == "/.well-known/matrix/server" else "/.well-known/matrix/server"
        raise web.HTTPFound(other)

    peer, cert = await well_known_peer(fake_peer, tmp_path, "loop.test", loop)
    findings = await diagnose("loop.test", network(cert, {("loop.test", 443): ("127.0.0.1", peer.port)}))
    finding = only(findings, "well_known")
    assert finding.status is Status.FAIL
    assert finding.why == "redirect loop at https://loop.test/.well-known/matrix/server."
    assert only(findings, "well_known.redirects").why == (
        "https://loop.test/.well-known/matrix/server redirects: https://loop.test/.well-known/matrix/server"
        " -> https://loop.test/elsewhere."
    )
    assert '{"m.server": "matrix.loop.test:443"}' in (finding.fix or "")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('{"m.server": "bad name!"}', "m.server 'bad name!' is not a valid server name"),
        ('{"m.server": 8448}', "no m.server string"),
        ("<html>hello</html>", "response is not JSON"),
    ],
)
async def test_well_known_invalid(fake_peer: PeerFactory, tmp_path: Path, body: str, why: str) -> None:
    async def serve(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.Response(text=body)

    peer, cert = await well_known_peer(fake_peer, tmp_path, "wk.test", serve)
    findings = await diagnose("wk.test", network(cert, {("wk.test", 443): ("127.0.0.1", peer.port)}))
    finding = only(findings, "well_known")
    assert finding.status is Status.FAIL
    assert finding.why == f"https://wk.test/.well-known/matrix/server: {why}."
    assert (finding.fix or "").startswith(
        'Serve https://wk.test/.well-known/matrix/server with status 200 and the JSON content'
        ' {"m.server": "matrix.wk.test:443"}'
    )


async def test_well_known_delegation_to_a_healthy_server(
    start_server: StartServer, fake_peer: PeerFactory, tmp_path: Path
) -> None:
    """deleg.test delegates to matrix.deleg.test:<port>, a dendrite-lite named deleg.test whose
    certificate is for matrix.deleg.test (spec step 3.2)."""
    cert, key = make_cert(tmp_path / "srv", "DNS:matrix.deleg.test")
    port = free_port()
    srv = await start_server({
        "server.server_name": "deleg.test", "listen.federation": f"127.0.0.1:{port}",
        "tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key,
    })

    async def delegate(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response({"m.server": f"matrix.deleg.test:{port}"}, headers={"Cache-Control": "max-age=0"})

    wk, wk_cert = await well_known_peer(fake_peer, tmp_path / "wk", "deleg.test", delegate)
    net = DoctorNetwork(
        make_trust([str(cert), str(wk_cert)]), NoSrv(), NoCname(),
        {("deleg.test", 443): ("127.0.0.1", wk.port), ("matrix.deleg.test", port): ("127.0.0.1", port)},
    )
    findings = await diagnose("deleg.test", net)
    assert failed(findings) == []
    assert only(findings, "well_known").why == (
        f"https://deleg.test/.well-known/matrix/server: m.server is 'matrix.deleg.test:{port}'."
    )
    cache = only(findings, "well_known.cache")
    assert cache.status is Status.WARN and cache.fix == "Send the header `Cache-Control: max-age=86400` with the file."
    assert only(findings, "tls.name").why == (
        f"127.0.0.1:{port} (matrix.deleg.test:{port}): the certificate is valid for matrix.deleg.test."
    )
    assert only(findings, "keys.signature").status is Status.OK
    assert srv.config.server.server_name == "deleg.test"


async def test_well_known_m_server_points_where_nothing_listens(fake_peer: PeerFactory, tmp_path: Path) -> None:
    """A valid m.server, but the wrong port (say the client listener's, or an old one)."""
    wrong = f"127.0.0.1:{free_port()}"

    async def delegate(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response({"m.server": wrong})

    wk, cert = await well_known_peer(fake_peer, tmp_path, "wrong.test", delegate)
    findings = await diagnose("wrong.test", network(cert, {("wrong.test", 443): ("127.0.0.1", wk.port)}))
    assert failed(findings) == ["tls.connect", "keys.fetch", "federation.version"]
    assert only(findings, "well_known").why == f"https://wrong.test/.well-known/matrix/server: m.server is {wrong!r}."
    fix = only(findings, "tls.connect").fix or ""
    assert fix.endswith(
        f"or, if federation listens elsewhere, correct m.server in https://wrong.test/.well-known/matrix/server"
        f" (m.server is {wrong!r}): it must name the host and port of the federation listener."
    )


async def test_clock_skew(fake_peer: PeerFactory, tmp_path: Path) -> None:
    """The peer's Date is ten minutes ahead on every answer."""
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")
    ahead = {"Date": email.utils.formatdate(time.time() + 600, usegmt=True)}

    async def keys(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response(key_document(peer.server_name, peer.key), headers=ahead)

    async def version(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response({"server": {"name": "fake-peer", "version": "0.1"}}, headers=ahead)

    peer = await fake_peer(cert, key, {"/_matrix/key/v2/server": keys, "/_matrix/federation/v1/version": version})
    findings = await diagnose(peer.server_name, network(cert))
    assert failed(findings) == ["federation.clock"]
    finding = only(findings, "federation.clock")
    assert re.fullmatch(r"The server's clock is (599|600|601) s ahead of this machine's: its events .*", finding.why)
    assert (finding.fix or "").startswith("Keep the server's clock in sync with NTP")
    assert "`timedatectl set-ntp true`" in (finding.fix or "")


async def test_nothing_listening(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path, "IP:127.0.0.1")
    name = f"127.0.0.1:{free_port()}"
    findings = await diagnose(name, network(cert))
    assert failed(findings) == ["tls.connect", "keys.fetch", "federation.version"]
    assert only(findings, "tls.connect").why.startswith(f"{name}: cannot connect (ConnectionRefusedError")
    assert only(findings, "federation.clock").status is Status.WARN


# /.well-known/matrix/client: peers on loopback named client.test through the overrides, as
# clients reach https://client.test/ on port 443.


CORS = {"Access-Control-Allow-Origin": "*"}


async def client_check(
    fake_peer: PeerFactory, tmp_path: Path, well_known: Handler, *, versions: Handler | None = None,
) -> list[Finding]:
    cert, key = make_cert(tmp_path, "DNS:client.test,DNS:api.client.test")
    routes = {"/.well-known/matrix/client": well_known}
    if versions is not None:
        routes["/_matrix/client/versions"] = versions
    peer = await fake_peer(cert, key, routes)
    net = network(cert, {("client.test", 443): ("127.0.0.1", peer.port), ("api.client.test", 443): ("127.0.0.1", peer.port)})
    findings = await diagnose("client.test", net)
    return [f for f in findings if f.area == "client"]


def answer(body: object, headers: dict[str, str] | None = None) -> Handler:
    async def serve(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.json_response(body, headers=headers)
    return serve


async def serve_versions(peer: FakePeer, request: web.Request) -> web.StreamResponse:
    return web.json_response({"versions": ["v1.11", "v1.12"]}, headers={"Access-Control-Allow-Origin": "*"})


async def test_client_well_known_absent(fake_peer: PeerFactory, tmp_path: Path) -> None:
    async def missing(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    (finding,) = await client_check(fake_peer, tmp_path, missing)
    assert (finding.check, finding.status) == ("client.well_known", Status.WARN)
    assert finding.why.startswith("https://client.test/.well-known/matrix/client answers 404")
    assert (finding.fix or "").endswith('{"m.homeserver": {"base_url": "https://client.test"}}')


async def test_client_well_known_without_cors(fake_peer: PeerFactory, tmp_path: Path) -> None:
    findings = await client_check(
        fake_peer, tmp_path, answer({"m.homeserver": {"base_url": "https://api.client.test"}}), versions=serve_versions,
    )
    assert failed(findings) == ["client.cors"]
    assert only(findings, "client.cors").why == (
        "https://client.test/.well-known/matrix/client has no Access-Control-Allow-Origin header: browser"
        " clients such as Element Web cannot read it, so their users must type the homeserver URL."
    )
    assert only(findings, "client.versions").why == (
        "https://api.client.test/_matrix/client/versions lists 2 spec versions, up to v1.12."
    )


async def test_client_well_known_http_base_url(fake_peer: PeerFactory, tmp_path: Path) -> None:
    """The base_url is plain http on a port where nothing listens: a WARN for the scheme, and the
    versions request fails."""
    port = free_port()
    findings = await client_check(
        fake_peer, tmp_path, answer({"m.homeserver": {"base_url": f"http://127.0.0.1:{port}"}}, CORS),
    )
    assert only(findings, "client.base_url").status is Status.WARN
    versions = only(findings, "client.versions")
    assert versions.status is Status.FAIL
    assert versions.why.startswith(f"GET http://127.0.0.1:{port}/_matrix/client/versions failed (cannot connect")


async def test_client_well_known_unreachable_base_url(fake_peer: PeerFactory, tmp_path: Path) -> None:
    """base_url on the peer itself, which does not serve the client API (404)."""
    findings = await client_check(
        fake_peer, tmp_path, answer({"m.homeserver": {"base_url": "https://api.client.test/"}}, CORS),
    )
    assert failed(findings) == ["client.versions"]
    finding = only(findings, "client.versions")
    assert finding.why == (
        "GET https://api.client.test/_matrix/client/versions answers HTTP 404: clients refuse this homeserver."
    )
    assert "a reverse proxy must forward /_matrix/ to it" in (finding.fix or "")


async def test_client_well_known_healthy_peer(fake_peer: PeerFactory, tmp_path: Path) -> None:
    findings = await client_check(
        fake_peer, tmp_path, answer({"m.homeserver": {"base_url": "https://api.client.test"}}, CORS),
        versions=serve_versions,
    )
    assert [(f.check, f.status) for f in findings] == [
        ("client.well_known", Status.OK), ("client.cors", Status.OK), ("client.base_url", Status.OK),
        ("client.versions", Status.OK),
    ]
