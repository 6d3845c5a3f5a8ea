"""The checks only the configured server's own doctor runs: the signed request to itself (its
answers faked with httpx.MockTransport), ports on server.public_ip (loopback listeners), the
outbox (a real database in tmp_path), and the certificate files with the ACME state."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dendrite_lite.config import Config, ListenConfig, ServerConfig, TlsConfig
from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.delegation.discovery import ServerDiscovery, SrvRecord, Target
from dendrite_lite.delegation.doctor import Finding, Status
from dendrite_lite.delegation.doctor.cert_checks import certificate_findings, covers
from dendrite_lite.delegation.doctor.outbox_checks import MAX_LISTED, outbox_findings
from dendrite_lite.delegation.doctor.ports import port_findings, ports_to_check
from dendrite_lite.delegation.doctor.self_request import self_request_findings
from dendrite_lite.federation.auth import parse_x_matrix
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.outbound_http import new_client
from dendrite_lite.storage import Storage
from dendrite_lite.storage.destinations import (
    upsert_destination_failure,
    upsert_destination_success,
)
from dendrite_lite.tls.state import CERTIFICATE_FILE, AcmeState, save_state
from tests.interop.synapse_server import free_port

NOW = 1_800_000_000.0
NAME = "example.org:8448"
DAY = 86400


def config(tmp_path: Path, *, server: dict[str, object] | None = None, listen: dict[str, object] | None = None,
           tls: dict[str, object] | None = None) -> Config:
    return Config(
        server=ServerConfig(server_name=NAME, data_dir=tmp_path, **(server or {})),  # type: ignore[arg-type]
        listen=ListenConfig(**(listen or {})),  # type: ignore[arg-type]
        tls=TlsConfig(**(tls or {})),  # type: ignore[arg-type]
    )


# the signed request to ourselves


async def self_request(answer: httpx.Response, seen: list[httpx.Request] | None = None) -> Finding:
    def handler(request: httpx.Request) -> httpx.Response:
        (seen if seen is not None else []).append(request)
        return answer

    class NoSrv:
        async def resolve_srv(self, name: str) -> list[SrvRecord]:
            return []

    transport = httpx.MockTransport(handler)
    client = FederationClient(
        NAME, new_server_key(), discovery=ServerDiscovery(new_client(transport), NoSrv()), transport=transport,
    )
    try:
        (finding,) = await self_request_findings(client, config(Path("/nonexistent"), listen={"federation": "127.0.0.1:8448"}))
    finally:
        await client.aclose()
    return finding


async def test_self_request_is_signed_by_us_for_us() -> None:
    seen: list[httpx.Request] = []
    finding = await self_request(httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "no"}), seen)
    assert finding.status is Status.OK
    assert finding.why == (
        "A signed GET /_matrix/federation/v1/query/profile from example.org:8448 to itself reached the homeserver"
        " and its signature was accepted (it answered 404 M_NOT_FOUND for a user that does not exist)."
    )
    (request,) = seen
    assert request.url.path == "/_matrix/federation/v1/query/profile"
    assert request.url.params["user_id"] == "@doctor-self-check:example.org:8448"
    auth = parse_x_matrix(request.headers["authorization"])
    assert (auth.origin, auth.destination) == (NAME, NAME)


async def test_self_request_answered_200() -> None:
    finding = await self_request(httpx.Response(200, json={"displayname": "x"}))
    assert (finding.status, finding.why) == (
        Status.OK, "A signed GET /_matrix/federation/v1/query/profile from example.org:8448 to itself was accepted (200).",
    )


@pytest.mark.parametrize("status", [401, 403])
async def test_self_request_refused_names_the_proxy(status: int) -> None:
    errcode = "M_UNAUTHORIZED" if status == 401 else "M_FORBIDDEN"
    finding = await self_request(httpx.Response(status, json={"errcode": errcode, "error": "missing header"}))
    assert finding.status is Status.FAIL
    assert f"was refused with {status} {errcode} (missing header): a reverse proxy strips the Authorization" in finding.why
    assert "proxy_pass http://127.0.0.1:8448;" in (finding.fix or "")
    assert (finding.fix or "").endswith("reverse_proxy /_matrix/* 127.0.0.1:8448")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (httpx.Response(404, text="<html>404 Not Found</html>", headers={"content-type": "text/html"}),
         "got HTTP 404 without a Matrix error: /_matrix/federation is not forwarded to dendrite-lite"),
        (httpx.Response(200, text="<html>my blog</html>", headers={"content-type": "text/html"}),
         "got HTTP 200 with a non-JSON body: /_matrix/federation is not forwarded to dendrite-lite"),
        (httpx.Response(502, text="<html>Bad Gateway</html>"),
         "got HTTP 502 without a Matrix error: the reverse proxy cannot reach dendrite-lite at http://127.0.0.1:8448."),
    ],
)
async def test_self_request_answered_by_something_else(answer: httpx.Response, why: str) -> None:
    finding = await self_request(answer)
    assert finding.status is Status.FAIL
    assert why in finding.why


# ports on server.public_ip


@pytest.fixture
async def listening_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def test_ports_to_check_follow_the_config(tmp_path: Path) -> None:
    acme = config(tmp_path, server={"public_baseurl": "https://matrix.example.org/"}, tls={"mode": "acme"})
    assert ports_to_check(acme, [Target("matrix.example.org", 8448)]) == {
        8448: ("federation, where peers connect", "listen.federation"),
        443: ("the client API at public_baseurl", "listen.client, or the reverse proxy"),
        80: ("ACME HTTP-01 challenges", "listen.acme_http"),
    }
    # Federation delegated to 443, no HTTP-01 listener: one port.
    no_http = config(
        tmp_path, server={"public_baseurl": "https://matrix.example.org/"}, listen={"acme_http": ""}, tls={"mode": "acme"},
    )
    assert list(ports_to_check(no_http, [Target("matrix.example.org", 443)])) == [443]


async def test_ports_unset_public_ip_is_not_checked(tmp_path: Path) -> None:
    (finding,) = await port_findings(config(tmp_path), [Target("example.org", 8448)])
    assert (finding.status, finding.why) == (
        Status.OK, "server.public_ip is not set, so reachability from the internet is not checked.",
    )


async def test_ports_on_this_machines_address(tmp_path: Path, listening_port: int) -> None:
    closed = free_port()
    cfg = config(tmp_path, server={"public_ip": "127.0.0.1", "public_baseurl": f"https://example.org:{closed}/"})
    findings = await port_findings(cfg, [Target("example.org", listening_port)], timeout_s=1)
    by_port = {f.why.split(" ")[0]: f for f in findings}
    ok = by_port[f"127.0.0.1:{listening_port}"]
    assert (ok.status, ok.why) == (
        Status.OK,
        f"127.0.0.1:{listening_port} (federation, where peers connect) accepts connections (tested from this machine).",
    )
    refused = by_port[f"127.0.0.1:{closed}"]
    assert refused.status is Status.FAIL
    assert refused.why == (
        f"127.0.0.1:{closed} (the client API at public_baseurl) does not accept connections: Connection refused."
        " 127.0.0.1 is this machine's own address, so the internet meets the same."
    )
    assert f"`ufw allow {closed}/tcp`" in (refused.fix or "")


async def test_ports_behind_nat_warn_about_hairpin(tmp_path: Path) -> None:
    closed = free_port()
    cfg = config(tmp_path, server={"public_ip": "127.0.0.1", "public_baseurl": f"https://example.org:{closed}/"})
    findings = await port_findings(cfg, [Target("example.org", closed)], timeout_s=1, is_local=lambda ip: False)
    (finding,) = findings
    assert finding.status is Status.WARN
    assert "routers without hairpin NAT refuse such connections from inside" in finding.why
    assert (finding.fix or "").startswith(f"On the router, forward TCP port {closed} to this machine")


# the outbox


async def failing_storage(path: Path, failing: int, now_ms: int) -> Storage:
    storage = await Storage.open(path)

    async def write(conn: object) -> None:
        await upsert_destination_success(conn, "fine.example", now_ms - 1000)  # type: ignore[arg-type]
        await upsert_destination_success(conn, "dead.example", now_ms - 3 * DAY * 1000)  # type: ignore[arg-type]
        for i in range(failing):
            name = "dead.example" if i == 0 else f"gone{i:02}.example"
            await upsert_destination_failure(  # type: ignore[arg-type]
                conn, name, now_ms - 60_000 - i, "cannot connect: ConnectError", 600_000, now_ms + 600_000,
            )

    await storage.db.write(write)
    return storage


async def test_outbox_without_a_database(tmp_path: Path) -> None:
    (finding,) = await outbox_findings(tmp_path / "homeserver.db", int(NOW * 1000))
    assert finding.status is Status.OK and "does not exist yet" in finding.why
    assert not (tmp_path / "homeserver.db").exists()  # read-only: the doctor created nothing


async def test_outbox_failing_destination_while_the_server_runs(tmp_path: Path) -> None:
    now_ms = int(NOW * 1000)
    storage = await failing_storage(tmp_path / "homeserver.db", 1, now_ms)
    try:
        (finding,) = await outbox_findings(tmp_path / "homeserver.db", now_ms)
    finally:
        await storage.close()
    assert finding.status is Status.WARN
    assert finding.why == (
        "Sending to dead.example: failing since after its last success at 2027-01-12 08:00 UTC; last error at"
        " 2027-01-15 07:59 UTC: cannot connect: ConnectError; next attempt in 10 min."
    )
    assert finding.fix == (
        "If dead.example is down or gone, nothing to fix here: delivery resumes when it answers."
        " Otherwise `dendrite-lite doctor dead.example` shows what stops it."
    )


async def test_outbox_caps_the_list(tmp_path: Path) -> None:
    now_ms = int(NOW * 1000)
    await (await failing_storage(tmp_path / "homeserver.db", MAX_LISTED + 3, now_ms)).close()
    findings = await outbox_findings(tmp_path / "homeserver.db", now_ms)
    assert [f.check for f in findings] == ["outbox.destination"] * MAX_LISTED + ["outbox.more"]
    assert findings[-1].why == f"3 more destinations are failing (of {MAX_LISTED + 4})."
    assert findings[1].why.startswith("Sending to gone01.example: never reached;")


async def test_outbox_all_healthy(tmp_path: Path) -> None:
    await (await failing_storage(tmp_path / "homeserver.db", 0, int(NOW * 1000))).close()
    (finding,) = await outbox_findings(tmp_path / "homeserver.db", int(NOW * 1000))
    assert (finding.status, finding.why) == (Status.OK, "No destination is failing (2 servers sent to so far).")


# certificate files and ACME renewal


def write_cert(path: Path, names: list[str], days_left: float) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    san = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(days=60))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_covers(tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate(write_cert(tmp_path / "c.pem", ["*.example.org", "192.0.2.1"], 30).read_bytes())
    assert covers(cert, "matrix.example.org") and covers(cert, "MATRIX.example.org.")
    assert not covers(cert, "example.org") and not covers(cert, "a.b.example.org")
    assert covers(cert, "192.0.2.1") and not covers(cert, "192.0.2.2")


def acme(tmp_path: Path, state: AcmeState | None, days_left: float | None) -> list[Finding]:
    cfg = config(tmp_path, tls={"mode": "acme"})
    if days_left is not None:
        write_cert(cfg.acme_dir / CERTIFICATE_FILE, ["example.org"], days_left)
    if state is not None:
        if days_left is not None:  # state.json describes the certificate on disk
            state = dataclasses.replace(state, not_after=NOW + days_left * DAY)
        save_state(cfg.acme_dir, state)
    return certificate_findings(cfg, ["example.org"], NOW)


def test_acme_without_a_certificate_fails_with_the_last_error(tmp_path: Path) -> None:
    (finding,) = acme(tmp_path, AcmeState(last_error="HTTP-01: connection refused"), None)
    assert finding.status is Status.FAIL
    assert finding.why.endswith("certificate.pem does not exist, so the TLS listeners serve a stand-in peers refuse."
                                " The last attempt failed: HTTP-01: connection refused.")
    assert (finding.fix or "").startswith("Make example.org resolve to this machine and port 80 (listen.acme_http = '0.0.0.0:80')")


def test_acme_expiring_within_a_week_fails(tmp_path: Path) -> None:
    (finding,) = acme(tmp_path, AcmeState(), 3)
    assert (finding.check, finding.status) == ("certificate.expiry", Status.FAIL)
    assert finding.why.endswith("certificate.pem expires in 3.0 days (2027-01-18 08:00 UTC).")
    assert "`dendrite-lite tls renew`" in (finding.fix or "")


def test_acme_failed_renewal_warns(tmp_path: Path) -> None:
    state = AcmeState(last_error="directory unreachable", failures=2, next_attempt=NOW + 6 * 3600)
    expiry, renewal = acme(tmp_path, state, 25)
    assert expiry.status is Status.OK
    assert (renewal.status, renewal.why) == (
        Status.WARN,
        "The last renewal attempt failed (2 in a row): directory unreachable; the next attempt is at 2027-01-15 14:00 UTC.",
    )


def test_acme_healthy_and_overdue(tmp_path: Path) -> None:
    expiry, renewal = acme(tmp_path, AcmeState(next_renewal=NOW + 10 * DAY), 40)
    assert expiry.why.endswith("is valid until 2027-02-24 08:00 UTC (40.0 days left).")
    assert (renewal.status, renewal.why) == (Status.OK, "Renewal is due at 2027-01-25 08:00 UTC.")
    _, overdue = acme(tmp_path, AcmeState(next_renewal=NOW - 5 * DAY), 25)
    assert overdue.status is Status.WARN and overdue.why.startswith("Renewal was due 5.0 days ago")


@pytest.mark.parametrize(
    ("names", "days_left", "expected"),
    [
        (["example.org"], 60, [("certificate.expiry", Status.OK), ("certificate.names", Status.OK)]),
        (["other.example"], 60, [("certificate.expiry", Status.OK), ("certificate.names", Status.FAIL)]),
        (["example.org"], -2, [("certificate.expiry", Status.FAIL), ("certificate.names", Status.OK)]),
    ],
)
def test_files_certificate(tmp_path: Path, names: list[str], days_left: float, expected: list[tuple[str, Status]]) -> None:
    cert = write_cert(tmp_path / "cert.pem", names, days_left)
    cfg = config(tmp_path, tls={"mode": "files", "cert_path": cert, "key_path": tmp_path / "key.pem"})
    findings = certificate_findings(cfg, ["example.org"], NOW)
    assert [(f.check, f.status) for f in findings] == expected
    if expected[1][1] is Status.FAIL:
        assert findings[1].why == f"tls.cert_path {cert} is not valid for example.org: clients and peers refuse it."


def test_proxy_mode_has_no_certificate_file(tmp_path: Path) -> None:
    (finding,) = certificate_findings(config(tmp_path), ["example.org"], NOW)
    assert finding.status is Status.OK and finding.why.startswith('tls.mode = "proxy"')


async def test_outbox_of_a_database_without_the_table(tmp_path: Path) -> None:
    path = tmp_path / "homeserver.db"
    sqlite3.connect(path).close()
    (finding,) = await outbox_findings(path, int(NOW * 1000))
    assert (finding.status, finding.why) == (Status.OK, f"{path} has no outbox yet: nothing was sent.")


def test_acme_names_pending(tmp_path: Path) -> None:
    cfg = config(tmp_path, tls={"mode": "acme", "acme_names": ("example.org", "matrix.example.org")})
    write_cert(cfg.acme_dir / CERTIFICATE_FILE, ["example.org"], 40)
    findings = certificate_findings(cfg, [], NOW)
    names = next(f for f in findings if f.check == "certificate.names")
    assert (names.status, names.why) == (
        Status.WARN,
        ("The certificate is for example.org, the config asks for example.org, matrix.example.org"
        " (tls.acme_names): the next renewal gets them."),
    )
