"""Each doctor check with fakes: a dict of SRV records, httpx.MockTransport for HTTP, canned
key documents and Date headers, files in tmp_path and a fake disk-usage function. Real servers are in tests/integration/test_doctor.py."""

from __future__ import annotations

import dataclasses
import email.utils
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dendrite_lite.config import (
    Config,
    ListenConfig,
    RegistrationConfig,
    ServerConfig,
    TlsConfig,
)
from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.crypto.signing import sign_json
from dendrite_lite.delegation.discovery import (
    Resolution,
    ServerDiscovery,
    SrvRecord,
    Target,
)
from dendrite_lite.delegation.doctor import DoctorNetwork, Finding, Status, worst
from dendrite_lite.delegation.doctor.client_checks import client_findings
from dendrite_lite.delegation.doctor.discovery_checks import (
    WellKnownTrace,
    check_server_name,
    srv_findings,
    well_known_findings,
)
from dendrite_lite.delegation.doctor.endpoints import (
    DateTrace,
    clock_finding,
    key_findings,
    version_findings,
)
from dendrite_lite.delegation.doctor.local_checks import (
    DISK_FAIL_BYTES,
    DISK_WARN_BYTES,
    LocalSetup,
    database_finding,
    disk_finding,
    federation_port_finding,
    local_findings,
    public_baseurl_finding,
    registration_finding,
    signing_key_finding,
)
from dendrite_lite.delegation.doctor.network import DnsCnameResolver, _RoutingTransport
from dendrite_lite.delegation.doctor.tls import (
    _expiry_finding,
    _verify_failure,
    address_findings,
)
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.outbound_http import new_client

NOW = 1_800_000_000.0
Handler = Callable[[httpx.Request], httpx.Response]


class FakeSrv:
    def __init__(self, records: dict[str, list[SrvRecord]] | None = None, fail: frozenset[str] = frozenset()) -> None:
        self.records = records or {}
        self.fail = fail

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        if name in self.fail:
            raise LookupError(f"SRV lookup for {name} failed: SERVFAIL")
        return self.records.get(name, [])


class FakeCname:
    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self.aliases = aliases or {}

    async def cname_of(self, host: str) -> str | None:
        return self.aliases.get(host)


def net(srv: FakeSrv | None = None, cname: FakeCname | None = None, **kw: Any) -> DoctorNetwork:
    return DoctorNetwork(ssl.create_default_context(), srv or FakeSrv(), cname or FakeCname(), clock=lambda: NOW, **kw)


def by(findings: list[Finding], check: str) -> Finding:
    (found,) = [f for f in findings if f.check == check]
    return found


# server name


def test_server_name_grammar() -> None:
    assert check_server_name("example.org").why == "'example.org' is a hostname."
    ok = check_server_name("[::1]:8448")
    assert ok.status is Status.OK and ok.why == "'[::1]:8448' is an IP literal with the explicit port 8448."
    bad = check_server_name("example.org:99999")
    assert bad.status is Status.FAIL and "example.org or matrix.example.org:8448" in (bad.fix or "")


# well-known


async def well_known(handler: Handler, name: str = "example.org", srv: FakeSrv | None = None) -> list[Finding]:
    trace = WellKnownTrace()
    http = new_client(httpx.MockTransport(handler))
    http.event_hooks["response"].append(trace.hook)
    resolution = await ServerDiscovery(http, srv or FakeSrv(), clock=lambda: NOW).resolve(name)
    return well_known_findings(resolution, trace)


async def test_well_known_valid_without_cache_control() -> None:
    findings = await well_known(lambda r: httpx.Response(200, json={"m.server": "matrix.example.org:443"}))
    assert [(f.check, f.status) for f in findings] == [("well_known", Status.OK), ("well_known.cache", Status.OK)]
    assert findings[0].why == "https://example.org/.well-known/matrix/server: m.server is 'matrix.example.org:443'."
    assert "default (24 hours)" in findings[1].why


@pytest.mark.parametrize("cache_control", ["no-store", "max-age=0", "no-cache, max-age=600"])
async def test_well_known_uncacheable_warns(cache_control: str) -> None:
    findings = await well_known(
        lambda r: httpx.Response(200, json={"m.server": "m.example.org"}, headers={"Cache-Control": cache_control})
    )
    cache = by(findings, "well_known.cache")
    assert cache.status is Status.WARN
    assert cache.fix == "Send the header `Cache-Control: max-age=86400` with the file."


async def test_well_known_max_age_reported() -> None:
    findings = await well_known(
        lambda r: httpx.Response(200, json={"m.server": "m.example.org"}, headers={"Cache-Control": "max-age=3600"})
    )
    assert by(findings, "well_known.cache").why == "Peers may cache the delegation for 3600 s."


async def test_well_known_redirect_followed_is_ok() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "example.org":
            return httpx.Response(301, headers={"Location": "https://www.example.org/.well-known/matrix/server"})
        return httpx.Response(200, json={"m.server": "matrix.example.org:443"})

    findings = await well_known(handler)
    redirects = by(findings, "well_known.redirects")
    assert redirects.status is Status.OK and redirects.fix is None
    assert redirects.why.endswith(
        "redirects: https://example.org/.well-known/matrix/server -> https://www.example.org/.well-known/matrix/server."
    )
    assert by(findings, "well_known").status is Status.OK


async def test_well_known_redirect_to_http_fails() -> None:
    findings = await well_known(
        lambda r: httpx.Response(302, headers={"Location": "http://example.org/.well-known/matrix/server"})
    )
    assert by(findings, "well_known").why == "redirect to a non-https URL http://example.org/.well-known/matrix/server."
    assert by(findings, "well_known").status is Status.FAIL


async def test_well_known_404_is_no_delegation() -> None:
    (finding,) = await well_known(lambda r: httpx.Response(404))
    assert finding.status is Status.OK
    assert finding.why.startswith("https://example.org/.well-known/matrix/server answers 404: no delegation")


async def test_well_known_server_error_warns() -> None:
    (finding,) = await well_known(lambda r: httpx.Response(502))
    assert finding.status is Status.WARN
    assert finding.why.startswith("https://example.org/.well-known/matrix/server: HTTP 502: peers treat this")


async def test_well_known_too_large_fails() -> None:
    (finding,) = await well_known(lambda r: httpx.Response(200, content=b" " * 60_000))
    assert finding.status is Status.FAIL
    assert "response larger than 51200 bytes" in finding.why


async def test_well_known_not_consulted_with_a_port() -> None:
    (finding,) = await well_known(lambda r: httpx.Response(500), name="example.org:8448")
    assert finding.status is Status.OK
    assert finding.why == (
        "Not consulted: 'example.org:8448' is a hostname with an explicit port, so peers connect to it directly."
    )


# SRV


async def srv(records: dict[str, list[SrvRecord]], *, fail: frozenset[str] = frozenset(), aliases: dict[str, str] | None = None) -> list[Finding]:
    fake = FakeSrv(records, fail)
    http = new_client(httpx.MockTransport(lambda r: httpx.Response(404)))
    resolution = await ServerDiscovery(http, fake, clock=lambda: NOW).resolve("example.org")
    return await srv_findings(resolution, net(fake, FakeCname(aliases)))


async def test_srv_matrix_fed() -> None:
    findings = await srv({"_matrix-fed._tcp.example.org": [SrvRecord(10, 0, 443, "fed.example.net")]})
    assert [(f.check, f.status, f.why) for f in findings] == [
        ("srv.matrix-fed", Status.OK, "SRV _matrix-fed._tcp.example.org -> fed.example.net:443."),
    ]


async def test_srv_legacy_only_warns_with_the_record_to_publish() -> None:
    findings = await srv({"_matrix._tcp.example.org": [SrvRecord(10, 5, 8443, "old.example.net"), SrvRecord(20, 0, 8448, "b.example.net")]})
    legacy = by(findings, "srv.matrix")
    assert legacy.status is Status.WARN
    assert legacy.fix == (
        "Publish the same record(s) under _matrix-fed._tcp:\n"
        "_matrix-fed._tcp.example.org. 3600 IN SRV 10 5 8443 old.example.net.\n"
        "_matrix-fed._tcp.example.org. 3600 IN SRV 20 0 8448 b.example.net."
    )


async def test_srv_lookup_failure_warns() -> None:
    findings = await srv({}, fail=frozenset({"_matrix-fed._tcp.example.org"}))
    failure = by(findings, "srv.matrix-fed")
    assert failure.status is Status.WARN
    assert failure.why.startswith("SRV lookup for _matrix-fed._tcp.example.org failed: SERVFAIL")
    assert by(findings, "srv").why == "No SRV record for example.org: peers connect to example.org:8448."


async def test_srv_target_cname_fails() -> None:
    findings = await srv(
        {"_matrix-fed._tcp.example.org": [SrvRecord(10, 0, 443, "alias.example.net")]},
        aliases={"alias.example.net": "real.example.net"},
    )
    cname = by(findings, "srv.target_cname")
    assert cname.status is Status.FAIL
    assert cname.fix == "Point the SRV record at real.example.net. instead of alias.example.net."


async def test_dns_cname_resolver_against_a_loopback_dns_server() -> None:
    """DnsCnameResolver asks for the CNAME itself: a fake DNS server on loopback UDP answers."""
    import asyncio

    import dns.message
    import dns.rcode
    import dns.rrset

    class FakeDns(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text()
            response = dns.message.make_response(query)
            if name == "alias.example.net.":
                response.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "real.example.net."))
            elif name != "real.example.net.":
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(FakeDns, local_addr=("127.0.0.1", 0))
    try:
        resolver = DnsCnameResolver(["127.0.0.1"], transport.get_extra_info("sockname")[1])
        assert await resolver.cname_of("alias.example.net") == "real.example.net"
        assert await resolver.cname_of("real.example.net") is None
        assert await resolver.cname_of("missing.example.net") is None
    finally:
        transport.close()


# A/AAAA


async def test_addresses_from_overrides_ip_and_failures() -> None:
    fake = FakeSrv({"_matrix-fed._tcp.example.org": [
        SrvRecord(10, 0, 443, "a.example.net"), SrvRecord(20, 0, 443, "nowhere.invalid"),
    ]})
    http = new_client(httpx.MockTransport(lambda r: httpx.Response(404)))
    resolution = await ServerDiscovery(http, fake, clock=lambda: NOW).resolve("example.org")
    network = net(fake, overrides={("a.example.net", 443): ("192.0.2.7", 443)})
    findings, pairs = await address_findings(resolution, network)
    assert [(f.status, f.why) for f in findings[:1]] == [(Status.OK, "a.example.net:443 resolves to 192.0.2.7:443.")]
    assert findings[1].status is Status.FAIL and findings[1].why.startswith("nowhere.invalid has no A or AAAA record")
    assert findings[1].fix == (
        "Publish the address of your server: `nowhere.invalid. 3600 IN A <IPv4 address>`"
        " (and/or `nowhere.invalid. 3600 IN AAAA <IPv6 address>`)."
    )
    assert [(t.host, a) for t, a in pairs] == [("a.example.net", ("192.0.2.7", 443))]


async def test_override_transport_keeps_host_header_and_sends_sni() -> None:
    seen: list[httpx.Request] = []

    def inner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    overrides = {("example.org", 443): ("127.0.0.1", 9443)}

    async def route(host: str, port: int) -> tuple[str, int] | None:
        return overrides.get((host, port))

    transport = _RoutingTransport(httpx.MockTransport(inner), route)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://example.org/x")
    assert str(seen[0].url) == "https://127.0.0.1:9443/x"
    assert seen[0].headers["host"] == "example.org"
    assert seen[0].extensions["sni_hostname"] == "example.org"
    assert str(response.request.url) == "https://example.org/x"


# TLS


def test_expiry() -> None:
    soon = _expiry_finding("h:1", NOW + 5 * 86400, NOW)
    assert soon.status is Status.WARN and soon.why == "h:1: the certificate expires in 5.0 days (2027-01-20 08:00 UTC)."
    assert _expiry_finding("h:1", NOW + 30 * 86400, NOW).status is Status.OK


@pytest.mark.parametrize(
    ("code", "message", "check"),
    [(10, "certificate has expired", "tls.expiry"), (62, "Hostname mismatch", "tls.name"),
     (20, "unable to get local issuer certificate", "tls.chain")],
)
def test_verify_failure_names_the_problem(code: int, message: str, check: str) -> None:
    error = ssl.SSLCertVerificationError()
    error.verify_code, error.verify_message = code, message
    finding = _verify_failure(error, "h:1", "example.org")
    assert (finding.check, finding.status) == (check, Status.FAIL)
    assert message in finding.why


# key document, version, clock


def fed_client(handler: Handler, dates: DateTrace | None = None) -> FederationClient:
    client = FederationClient("us.test", new_server_key(), transport=httpx.MockTransport(handler), srv=FakeSrv())
    if dates is not None:
        client.http.event_hooks["response"].append(dates.hook)
    return client


NAME = "127.0.0.1:8448"
KEY = new_server_key()


def doc(**changes: Any) -> dict[str, Any]:
    body = {"server_name": NAME, "verify_keys": {KEY.key_id: {"key": KEY.verify_key_base64}},
            "old_verify_keys": {}, "valid_until_ts": int(NOW * 1000) + 3_600_000}
    body.update(changes)
    return sign_json(body, NAME, KEY)


async def keys(body: Any) -> list[Finding]:
    client = fed_client(lambda r: httpx.Response(200, json=body))
    try:
        return await key_findings(client, NAME, int(NOW * 1000))
    finally:
        await client.aclose()


async def test_keys_healthy() -> None:
    findings = await keys(doc())
    assert [(f.check, f.status) for f in findings] == [
        ("keys.server_name", Status.OK), ("keys.valid_until", Status.OK), ("keys.signature", Status.OK),
    ]
    assert findings[1].why == "The key document is valid for 1.0 more hours."


async def test_keys_problems() -> None:
    assert by(await keys(doc(valid_until_ts=int(NOW * 1000) - 5000)), "keys.valid_until").why.startswith(
        "The key document expired 5 s ago"
    )
    unsigned = {k: v for k, v in doc().items() if k != "signatures"}
    assert by(await keys(unsigned), "keys.signature").why == (
        f"Key {KEY.key_id}: no signature from {NAME} with key {KEY.key_id}; peers reject this key."
    )
    tampered = doc()
    tampered["valid_until_ts"] += 1
    assert by(await keys(tampered), "keys.signature").status is Status.FAIL
    assert by(await keys(doc(verify_keys={})), "keys.signature").why == "The key document lists no verify_keys."
    wrong = await keys(sign_json({**doc(), "server_name": "x.test"}, "x.test", KEY))
    assert [f.check for f in wrong] == ["keys.server_name", "keys.valid_until"]
    assert by(await keys([1, 2]), "keys.fetch").why == "/_matrix/key/v2/server is not a JSON object."


async def test_version() -> None:
    async def version(response: httpx.Response) -> Finding:
        client = fed_client(lambda r: response)
        try:
            (finding,) = await version_findings(client, NAME)
        finally:
            await client.aclose()
        return finding

    ok = await version(httpx.Response(200, json={"server": {"name": "Synapse", "version": "1.163.0"}}))
    assert (ok.status, ok.why) == (Status.OK, "The server runs Synapse 1.163.0.")
    assert (await version(httpx.Response(200, json={"server": {}}))).status is Status.WARN
    missing = await version(httpx.Response(404, json={"errcode": "M_UNRECOGNIZED"}))
    assert missing.status is Status.FAIL
    assert missing.why == "GET /_matrix/federation/v1/version failed: HTTP 404 M_UNRECOGNIZED."


async def test_clock_skew_from_date_headers() -> None:
    def at(offset: float) -> Handler:
        date = email.utils.formatdate(NOW + offset, usegmt=True)
        return lambda r: httpx.Response(200, json={}, headers={"Date": date})

    for offset, status, why in [
        (45, Status.WARN, "The server's clock is 45 s ahead of this machine's."),
        (-120, Status.WARN, "The server's clock is 120 s behind this machine's."),
        (2, Status.OK, "The server's clock is within 2 s of this machine's."),
        (-600, Status.FAIL, ("The server's clock is 600 s behind this machine's: its events carry wrong timestamps"
         " (clients show them out of order), key validity is judged by those timestamps, and past an hour"
         " new TLS certificates are not valid yet on one side.")),
    ]:
        dates = DateTrace(lambda: NOW)
        client = fed_client(at(offset), dates)
        await client.get_json(NAME, "/x", sign=False)
        await client.aclose()
        finding = clock_finding(dates)
        assert (finding.status, finding.why) == (status, why)
    assert clock_finding(DateTrace(lambda: NOW)).status is Status.WARN


def test_worst() -> None:
    ok, warn, fail = (Finding("c", "dns", s, "w") for s in Status)
    assert worst([ok, warn]) is Status.WARN and worst([warn, fail, ok]) is Status.FAIL and worst([]) is Status.OK


# client well-known


WK_CLIENT = "https://example.org/.well-known/matrix/client"
CORS = {"Access-Control-Allow-Origin": "*"}
VERSIONS = {"versions": ["r0.6.1", "v1.1", "v1.12"]}


def client_site(well_known: httpx.Response, versions: httpx.Response | None = None) -> Handler:
    """example.org serves the well-known file; matrix.example.org the client API."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/matrix/client":
            return well_known
        if request.url.path == "/_matrix/client/versions":
            return versions or httpx.Response(200, json=VERSIONS, headers=CORS)
        return httpx.Response(404)
    return handler


async def client(handler: Handler, public_baseurl: str | None = None) -> list[Finding]:
    async with new_client(httpx.MockTransport(handler)) as http:
        return await client_findings(http, "example.org:8448", public_baseurl=public_baseurl)


def homeserver(base_url: Any) -> dict[str, Any]:
    return {"m.homeserver": {"base_url": base_url}}


async def test_client_well_known_healthy() -> None:
    findings = await client(client_site(httpx.Response(200, json=homeserver("https://matrix.example.org/"), headers=CORS)))
    assert [(f.check, f.status) for f in findings] == [
        ("client.well_known", Status.OK), ("client.cors", Status.OK), ("client.base_url", Status.OK),
        ("client.versions", Status.OK),
    ]
    assert findings[0].why == f"{WK_CLIENT}: m.homeserver.base_url is 'https://matrix.example.org/'."
    # The trailing slash is allowed (spec step 5.3) and not doubled.
    assert findings[3].why == "https://matrix.example.org/_matrix/client/versions lists 3 spec versions, up to v1.12."


async def test_client_well_known_absent_warns_with_the_file_to_publish() -> None:
    (finding,) = await client(lambda r: httpx.Response(404))
    assert (finding.check, finding.status) == ("client.well_known", Status.WARN)
    assert finding.why.startswith(f"{WK_CLIENT} answers 404: clients cannot find the homeserver")
    assert finding.fix == (
        f"Serve {WK_CLIENT} with status 200, the header `Access-Control-Allow-Origin: *` and the JSON"
        ' content {"m.homeserver": {"base_url": "https://example.org"}}'
    )


async def test_client_well_known_fix_uses_the_configured_public_baseurl() -> None:
    (finding,) = await client(lambda r: httpx.Response(404), public_baseurl="https://matrix.example.org:8443/")
    assert (finding.fix or "").endswith('{"m.homeserver": {"base_url": "https://matrix.example.org:8443"}}')


async def test_client_well_known_unreachable_warns() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    (finding,) = await client(refuse)
    assert finding.status is Status.WARN
    assert finding.why.startswith(f"{WK_CLIENT} has no HTTPS answer (cannot connect to example.org")


async def test_client_well_known_server_error_warns() -> None:
    (finding,) = await client(lambda r: httpx.Response(503))
    assert finding.status is Status.WARN and "answers HTTP 503" in finding.why


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"<html></html>", "the answer is not JSON"), (b"[1]", "the answer is not a JSON object"),
     (b'{"m.homeserver": {}}', "no m.homeserver.base_url string"),
     (b'{"m.homeserver": {"base_url": 3}}', "no m.homeserver.base_url string")],
)
async def test_client_well_known_unusable_content_fails(content: bytes, why: str) -> None:
    findings = await client(client_site(httpx.Response(200, content=content, headers=CORS)))
    assert [(f.check, f.status) for f in findings] == [("client.well_known", Status.FAIL), ("client.cors", Status.OK)]
    assert findings[0].why == f"{WK_CLIENT}: {why}, so clients report that auto-discovery failed."


async def test_client_well_known_without_cors_fails() -> None:
    findings = await client(client_site(httpx.Response(200, json=homeserver("https://matrix.example.org"))))
    cors = by(findings, "client.cors")
    assert cors.status is Status.FAIL
    assert "browser clients such as Element Web cannot read it" in cors.why
    assert cors.fix == f"Send the header `Access-Control-Allow-Origin: *` with {WK_CLIENT}."
    assert by(findings, "client.versions").status is Status.OK


async def test_client_well_known_cors_for_one_origin_warns() -> None:
    headers = {"Access-Control-Allow-Origin": "https://app.element.io"}
    findings = await client(client_site(httpx.Response(200, json=homeserver("https://m.example.org"), headers=headers)))
    assert by(findings, "client.cors").status is Status.WARN


async def test_client_base_url_http_warns_and_is_still_checked() -> None:
    findings = await client(client_site(httpx.Response(200, json=homeserver("http://matrix.example.org:8008"), headers=CORS)))
    base_url = by(findings, "client.base_url")
    assert base_url.status is Status.WARN and "plain http" in base_url.why
    assert base_url.fix == 'Serve the client API over HTTPS and set "base_url" to "https://matrix.example.org:8008".'
    assert by(findings, "client.versions").why.startswith("http://matrix.example.org:8008/_matrix/client/versions lists")


@pytest.mark.parametrize("base", ["matrix.example.org", "ftp://matrix.example.org", "https://", "https://h:port"])
async def test_client_base_url_not_a_url_fails_without_a_versions_request(base: str) -> None:
    findings = await client(client_site(httpx.Response(200, json=homeserver(base), headers=CORS)))
    assert by(findings, "client.base_url").status is Status.FAIL
    assert [f.check for f in findings] == ["client.well_known", "client.cors", "client.base_url"]


@pytest.mark.parametrize(
    ("versions", "why"),
    [(httpx.Response(404, json={"errcode": "M_UNRECOGNIZED"}), "answers HTTP 404"),
     (httpx.Response(200, text="<html>welcome</html>"), "does not answer a JSON object with a versions list"),
     (httpx.Response(200, json={"versions": []}), "does not answer a JSON object with a versions list")],
)
async def test_client_versions_unusable_fails(versions: httpx.Response, why: str) -> None:
    findings = await client(client_site(httpx.Response(200, json=homeserver("https://m.example.org"), headers=CORS), versions))
    finding = by(findings, "client.versions")
    assert finding.status is Status.FAIL and why in finding.why
    assert (finding.fix or "").startswith("Make https://m.example.org/_matrix/client/versions reach the homeserver")


async def test_client_well_known_redirects() -> None:
    def moved(request: httpx.Request) -> httpx.Response:
        if request.url.host == "example.org":
            return httpx.Response(301, headers={"Location": "https://www.example.org/.well-known/matrix/client"})
        return client_site(httpx.Response(200, json=homeserver("https://m.example.org"), headers=CORS))(request)

    findings = await client(moved)
    assert by(findings, "client.well_known").why.startswith("https://www.example.org/.well-known/matrix/client:")
    loop = await client(lambda r: httpx.Response(302, headers={"Location": WK_CLIENT}))
    assert loop[0].status is Status.FAIL and loop[0].why == f"{WK_CLIENT}: redirect loop ({WK_CLIENT} -> {WK_CLIENT})."
    plain = await client(lambda r: httpx.Response(302, headers={"Location": "http://example.org/x"}))
    assert plain[0].why == f"{WK_CLIENT}: redirect to a non-https URL http://example.org/x."


# local setup


def local_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    server = {"server_name": "example.org", "public_baseurl": "https://matrix.example.org/", "data_dir": tmp_path,
              **sections.pop("server", {})}
    parts: dict[str, Any] = {"server": ServerConfig(**server)}
    if "registration" in sections:
        parts["registration"] = RegistrationConfig(**sections.pop("registration"))
    if "listen" in sections:
        parts["listen"] = ListenConfig(**sections.pop("listen"))
    assert not sections
    return Config(**parts)


def test_public_baseurl_on_the_delegated_host_or_the_server_name() -> None:
    config = local_config(Path("/nonexistent"))
    ok = public_baseurl_finding(config, ["matrix.example.org"])
    assert (ok.status, ok.why) == (
        Status.OK, "server.public_baseurl https://matrix.example.org/ is on matrix.example.org, where example.org is delegated."
    )
    same = local_config(Path("/x"), server={"public_baseurl": "https://example.org"})
    assert public_baseurl_finding(same, ["example.org"]).status is Status.OK


def test_public_baseurl_elsewhere_or_unset_warns_with_the_config_line() -> None:
    stale = public_baseurl_finding(local_config(Path("/x"), server={"public_baseurl": "https://old.example.net/"}),
                                   ["example.org", "matrix.example.org"])
    assert stale.status is Status.WARN
    assert stale.why.startswith(
        "server.public_baseurl https://old.example.net/ is on old.example.net, which is neither example.org nor"
        " where example.org is delegated (matrix.example.org)"
    )
    assert stale.fix == 'Set `public_baseurl = "https://matrix.example.org/"` in [server] (the URL clients reach the client API at).'
    unset = public_baseurl_finding(local_config(Path("/x"), server={"public_baseurl": ""}), ["example.org"])
    assert unset.status is Status.WARN and unset.why.startswith("server.public_baseurl is not set")
    assert unset.fix is not None and '"https://example.org/"' in unset.fix


@pytest.mark.parametrize(
    ("bind", "status"),
    [("0.0.0.0:8008", Status.WARN), ("[::]:8008", Status.WARN), ("203.0.113.5:8008", Status.WARN),
     ("127.0.0.1:8008", Status.OK), ("[::1]:8008", Status.OK), ("localhost:8008", Status.OK)],
)
def test_open_registration_on_a_public_listener_warns(bind: str, status: Status) -> None:
    finding = registration_finding(local_config(Path("/x"), registration={"mode": "open"}, listen={"client": bind}))
    assert finding.status is status
    if status is Status.WARN:
        assert "anyone on the internet can create accounts" in finding.why
        assert 'registration.mode = "token"' in (finding.fix or "")
        assert "`dendrite-lite registration-token create`" in (finding.fix or "")


def test_token_registration_on_a_public_listener_is_ok() -> None:
    config = local_config(Path("/x"), registration={"mode": "token"}, listen={"client": "0.0.0.0:8008"})
    assert registration_finding(config).status is Status.OK


def test_signing_key_permissions(tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    assert signing_key_finding(key, "example.org").fix == "Create it: `dendrite-lite generate-keys`."
    key.write_text("ed25519 a_bcde xxxx\n")
    key.chmod(0o644)
    loose = signing_key_finding(key, "example.org")
    assert loose.status is Status.FAIL
    assert loose.why == (
        f"The signing key {key} is readable by its group and everyone (mode 0644): whoever reads it can"
        " sign events and requests as example.org."
    )
    assert loose.fix == f"`chmod 600 {key}`"
    key.chmod(0o640)
    assert "readable by its group (mode 0640)" in signing_key_finding(key, "example.org").why
    key.chmod(0o600)
    assert signing_key_finding(key, "example.org").status is Status.OK


def test_database_permissions(tmp_path: Path) -> None:
    db = tmp_path / "homeserver.db"
    assert database_finding(db).status is Status.OK  # not created yet
    db.write_bytes(b"")
    Path(f"{db}-wal").write_bytes(b"")
    db.chmod(0o600)
    Path(f"{db}-wal").chmod(0o604)
    loose = database_finding(db)
    assert loose.status is Status.WARN
    assert loose.why.startswith(f"The database {db}-wal is readable by everyone (mode 0604)")
    assert loose.fix == f"`chmod 600 {db}-wal`"
    Path(f"{db}-wal").chmod(0o600)
    assert database_finding(db).status is Status.OK


@dataclass
class FakeUsage:
    free: int


@pytest.mark.parametrize(
    ("free", "status", "why"),
    [(50 << 20, Status.FAIL, "Only 50 MiB free"), (DISK_FAIL_BYTES, Status.WARN, "Only 100 MiB free"),
     (DISK_WARN_BYTES - 1, Status.WARN, "Only 1024 MiB free"), (DISK_WARN_BYTES, Status.OK, "1.0 GiB free"),
     (80 << 30, Status.OK, "80.0 GiB free")],
)
def test_free_disk_space(tmp_path: Path, free: int, status: Status, why: str) -> None:
    asked: list[Path] = []

    def usage(path: Path) -> FakeUsage:
        asked.append(path)
        return FakeUsage(free)

    data_dir = tmp_path / "not" / "yet"
    finding = disk_finding(data_dir, usage)
    assert (finding.status, finding.why.split(" on ")[0]) == (status, why)
    assert asked == [tmp_path]  # the nearest directory that exists: same filesystem
    if status is not Status.OK:
        assert (finding.fix or "").startswith(f"Free space on the filesystem of {data_dir} (server.data_dir)")


def test_disk_finding_tells_what_media_uses(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "content" / "ab").mkdir(parents=True)
    (media / "content" / "ab" / "f1").write_bytes(b"x" * (3 << 20))
    (media / "tmp").mkdir()
    (media / "tmp" / "upload").write_bytes(b"x" * (1 << 20))
    finding = disk_finding(tmp_path, lambda p: FakeUsage(10 << 30), media_dir=media)
    assert finding.why == f"10.0 GiB free on the filesystem of {tmp_path} (server.data_dir). Media files ({media}) use 4 MiB."
    empty = disk_finding(tmp_path, lambda p: FakeUsage(50 << 20), media_dir=tmp_path / "none")
    assert empty.why.endswith(f"Media files ({tmp_path / 'none'}) use 0 MiB.")


def test_local_findings_all(tmp_path: Path) -> None:
    config = local_config(tmp_path, registration={"mode": "open"}, listen={"client": "0.0.0.0:8008"})
    config.signing_key_path.write_text("k")
    config.signing_key_path.chmod(0o600)
    resolution = Resolution("example.org", (Target("matrix.example.org", 8448),), "example.org", "matrix.example.org")
    findings = local_findings(LocalSetup(config, lambda p: FakeUsage(10 << 30)), resolution)
    assert [(f.check, f.area, f.status) for f in findings] == [
        ("local.federation_port", "local", Status.OK), ("local.public_baseurl", "local", Status.OK), ("local.registration", "local", Status.WARN),
        ("local.signing_key", "local", Status.OK), ("local.database", "local", Status.OK),
        ("local.disk", "local", Status.OK),
    ]


def test_federation_port_against_where_peers_connect(tmp_path: Path) -> None:
    resolution = Resolution("example.org", (Target("example.org", 8448),), "example.org", "example.org")
    tls = {"mode": "files", "cert_path": tmp_path / "c.pem", "key_path": tmp_path / "k.pem"}
    same = federation_port_finding(dataclasses.replace(local_config(tmp_path), tls=TlsConfig(**tls)), resolution)
    assert (same.status, same.why) == (Status.OK, "Peers connect to example.org:8448, and listen.federation listens on port 8448.")
    elsewhere = dataclasses.replace(
        local_config(tmp_path, listen={"federation": "0.0.0.0:8449"}), tls=TlsConfig(**tls),
    )
    moved = federation_port_finding(elsewhere, resolution)
    assert moved.status is Status.WARN
    assert moved.why == (
        "Peers connect to example.org:8448, but listen.federation listens on port 8449: only a router"
        " forwarding port 8448 to 8449 joins them."
    )
    assert moved.fix == (
        "Tell peers the port: publish `_matrix-fed._tcp.example.org. 3600 IN SRV 10 0 8449 example.org.` or serve"
        ' https://example.org/.well-known/matrix/server with {"m.server": "example.org:8449"}; or listen where'
        ' peers connect: `federation = "<address>:8448"` in [listen].'
    )
    # Plain HTTP behind a reverse proxy: the proxy joins the ports.
    proxied = federation_port_finding(local_config(tmp_path, listen={"federation": "127.0.0.1:8449"}), resolution)
    assert proxied.status is Status.OK and "a reverse proxy must forward that to it" in proxied.why
