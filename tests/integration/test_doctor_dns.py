"""`doctor` and discovery through real DNS: dnsmasq on loopback serves the doctor.test zone
(tests/dns_server.py) and every lookup (SRV, CNAME, A/AAAA) goes to it; dendrite-lite servers
listen on the zone's SRV ports with certificates for their names."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.delegation.discovery import DnsSrvResolver, ServerDiscovery, Target
from dendrite_lite.delegation.doctor import (
    DoctorNetwork,
    LocalSetup,
    Status,
    diagnose,
)
from dendrite_lite.outbound_http import new_client
from tests.conftest import RunningServer, StartServer
from tests.dns_server import DnsZone
from tests.integration.doctor_helpers import failed, make_cert, only

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def network(zone: DnsZone, ca: Path | None = None) -> DoctorNetwork:
    net = DoctorNetwork.default([str(ca)] if ca else [], zone.address)
    net.timeout_s = 5
    return net


async def start_named(start_server: StartServer, tmp_path: Path, zone: DnsZone, short: str) -> tuple[RunningServer, Path]:
    """A dendrite-lite named <short>.doctor.test on the zone's SRV port for it."""
    name = zone.name(short)
    cert, key = make_cert(tmp_path, f"DNS:{name}")
    srv = await start_server({
        "server.server_name": name, "listen.federation": f"127.0.0.1:{zone.ports[short]}",
        "tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key,
    })
    return srv, cert


@pytest.mark.parametrize(
    ("short", "targets"),
    [
        ("healthy", [("fed.healthy.doctor.test", "healthy")]),
        ("legacy", [("fed.legacy.doctor.test", "legacy")]),
        ("cname", [("alias.cname.doctor.test", "cname")]),
        ("nosrv", [("nosrv.doctor.test", None)]),
    ],
)
async def test_discovery_resolves_through_dnsmasq(dns_zone: DnsZone, short: str, targets: list[tuple[str, str | None]]) -> None:
    """Federation's own resolution (ServerDiscovery with DnsSrvResolver) against the zone: the
    SRV target and port, the legacy record, the CNAME target as published, else port 8448."""
    no_well_known = new_client(httpx.MockTransport(lambda r: httpx.Response(404)))
    discovery = ServerDiscovery(no_well_known, DnsSrvResolver(["127.0.0.1"], dns_zone.port))
    resolution = await discovery.resolve(dns_zone.name(short))
    await no_well_known.aclose()
    expected = tuple(Target(host, dns_zone.ports[port] if port else 8448) for host, port in targets)
    assert resolution.targets == expected
    assert (resolution.host_header, resolution.tls_name) == (dns_zone.name(short), dns_zone.name(short))


async def test_healthy_server_found_by_srv(dns_zone: DnsZone, start_server: StartServer, tmp_path: Path) -> None:
    """Its own doctor: no FAIL, the SRV target and port used for TLS, the signed request and the
    client API all through addresses dnsmasq gave."""
    srv, cert = await start_named(start_server, tmp_path, dns_zone, "healthy")
    port = dns_zone.ports["healthy"]
    local = LocalSetup(srv.config, disk_usage=lambda path: shutil.disk_usage(path)._replace(free=10 << 30))
    findings = await diagnose("healthy.doctor.test", network(dns_zone, cert), local)
    assert failed(findings) == [], [f for f in findings if f.status is Status.FAIL]
    assert only(findings, "srv.matrix-fed").why == (
        f"SRV _matrix-fed._tcp.healthy.doctor.test -> fed.healthy.doctor.test:{port}."
    )
    assert only(findings, "dns.addresses").why == f"fed.healthy.doctor.test:{port} resolves to 127.0.0.1:{port}."
    assert only(findings, "tls.name").why == (
        f"127.0.0.1:{port} (fed.healthy.doctor.test:{port}): the certificate is valid for healthy.doctor.test."
    )
    assert only(findings, "keys.server_name").why == "The key document names healthy.doctor.test."
    assert only(findings, "federation.signed_request").status is Status.OK
    assert only(findings, "certificate.names").why == f"tls.cert_path {cert} is valid for healthy.doctor.test."
    # healthy.doctor.test is A 127.0.0.1, where nothing listens on 443: no delegation.
    assert only(findings, "well_known").why.startswith(
        "https://healthy.doctor.test/.well-known/matrix/server has no HTTPS answer: no delegation"
    )


async def test_missing_srv_falls_back_to_8448_where_nothing_listens(dns_zone: DnsZone) -> None:
    findings = await diagnose("nosrv.doctor.test", network(dns_zone))
    assert only(findings, "srv").why == "No SRV record for nosrv.doctor.test: peers connect to nosrv.doctor.test:8448."
    assert only(findings, "srv").status is Status.OK
    assert only(findings, "dns.addresses").why == "nosrv.doctor.test:8448 resolves to 127.0.0.3:8448."
    assert failed(findings) == ["tls.connect", "keys.fetch", "federation.version"]
    connect = only(findings, "tls.connect")
    assert connect.why.startswith("127.0.0.3:8448 (nosrv.doctor.test:8448): cannot connect (ConnectionRefusedError")
    assert (connect.fix or "").endswith(
        "or, if federation listens elsewhere, tell peers where: an SRV record"
        " `_matrix-fed._tcp.nosrv.doctor.test. 3600 IN SRV 10 0 <port> <host of the server>.` or"
        ' https://nosrv.doctor.test/.well-known/matrix/server with {"m.server": "<host>:<port>"}.'
    )


async def test_cname_srv_target_fails(dns_zone: DnsZone, start_server: StartServer, tmp_path: Path) -> None:
    _, cert = await start_named(start_server, tmp_path, dns_zone, "cname")
    findings = await diagnose("cname.doctor.test", network(dns_zone, cert))
    assert failed(findings) == ["srv.target_cname"]
    finding = only(findings, "srv.target_cname")
    assert finding.why == (
        "The SRV target alias.cname.doctor.test is a CNAME (alias of fed.cname.doctor.test), which the spec"
        " forbids (RFC 2782): peers whose resolvers refuse aliases cannot reach the server."
    )
    assert finding.fix == "Point the SRV record at fed.cname.doctor.test. instead of alias.cname.doctor.test."
    # The alias still resolves, and the server behind it answers.
    assert only(findings, "keys.signature").status is Status.OK


async def test_legacy_srv_only_warns_with_the_record_to_publish(
    dns_zone: DnsZone, start_server: StartServer, tmp_path: Path
) -> None:
    _, cert = await start_named(start_server, tmp_path, dns_zone, "legacy")
    findings = await diagnose("legacy.doctor.test", network(dns_zone, cert))
    assert failed(findings) == []
    finding = only(findings, "srv.matrix")
    assert finding.status is Status.WARN
    assert finding.fix == (
        "Publish the same record(s) under _matrix-fed._tcp:\n"
        f"_matrix-fed._tcp.legacy.doctor.test. 3600 IN SRV 10 0 {dns_zone.ports['legacy']} fed.legacy.doctor.test."
    )
    assert only(findings, "federation.version").status is Status.OK


async def test_srv_target_without_address_fails(dns_zone: DnsZone) -> None:
    findings = await diagnose("noaddr.doctor.test", network(dns_zone))
    assert failed(findings) == ["dns.addresses", "keys.fetch", "federation.version"]
    finding = only(findings, "dns.addresses")
    assert finding.why.startswith("gone.noaddr.doctor.test has no A or AAAA record")
    assert finding.fix == (
        "Publish the address of your server: `gone.noaddr.doctor.test. 3600 IN A <IPv4 address>`"
        " (and/or `gone.noaddr.doctor.test. 3600 IN AAAA <IPv6 address>`)."
    )


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["doctor", *args, "--json"], env={"DENDRITE_LITE_CONFIG": None})


async def test_cli_dns_server_option(dns_zone: DnsZone, start_server: StartServer, tmp_path: Path) -> None:
    """The hidden --dns-server: exit 0 with warnings only (the legacy SRV record), exit 1 when
    the SRV target has no address. The CLI runs its own loop: in a thread, while ours serves."""
    _, cert = await start_named(start_server, tmp_path, dns_zone, "legacy")
    dns = f"127.0.0.1:{dns_zone.port}"
    legacy = await asyncio.to_thread(run_cli, "legacy.doctor.test", "--dns-server", dns, "--ca-file", str(cert))
    assert legacy.exit_code == 0, legacy.output
    statuses = {f["check"]: f["status"] for f in json.loads(legacy.stdout)}
    assert statuses["srv.matrix"] == "WARN" and statuses["keys.signature"] == "OK"
    noaddr = await asyncio.to_thread(run_cli, "noaddr.doctor.test", "--dns-server", dns)
    assert noaddr.exit_code == 1
    assert [f["check"] for f in json.loads(noaddr.stdout) if f["status"] == "FAIL"] == ["dns.addresses", "keys.fetch", "federation.version"]
    bad = await asyncio.to_thread(run_cli, "noaddr.doctor.test", "--dns-server", "localhost")
    assert bad.exit_code == 2 and "--dns-server: 'localhost' is not IP:PORT" in bad.output
