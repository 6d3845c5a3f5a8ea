"""Each doctor check with fakes: a dict of SRV records, httpx.MockTransport for HTTP, canned
key documents and Date headers. Real servers are in tests/integration/test_doctor.py."""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.crypto.signing import sign_json
from dendrite_lite.delegation.discovery import ServerDiscovery, SrvRecord
from dendrite_lite.delegation.doctor import DoctorNetwork, Finding, Status, worst
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
from dendrite_lite.delegation.doctor.network import DnsCnameResolver, _OverrideTransport
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


async def test_srv_target_cname_warns() -> None:
    findings = await srv(
        {"_matrix-fed._tcp.example.org": [SrvRecord(10, 0, 443, "alias.example.net")]},
        aliases={"alias.example.net": "real.example.net"},
    )
    cname = by(findings, "srv.target_cname")
    assert cname.status is Status.WARN
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

    transport = _OverrideTransport(httpx.MockTransport(inner), {("example.org", 443): ("127.0.0.1", 9443)})
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
