"""The real `dendrite-lite init` in a pseudo-terminal, answered as a person would, for each
delegation choice, with its live checks against real DNS: the session's dnsmasq (tests/
dns_server.py) answers every lookup (--dns-server), and a loopback HTTP server plays the ACME
directory that names the terms of service. The public IP is typed in (--no-detect): 127.0.0.1,
where the zone's names point.

Names used from the zone: fed.healthy.doctor.test (A 127.0.0.1, nothing else), healthy.doctor.test
(A 127.0.0.1 and an SRV record to fed.healthy.doctor.test:<port>), nosrv.doctor.test (A
127.0.0.3: not this machine).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pexpect
import pytest

from dendrite_lite.config import Config, load_config
from tests.cli.test_cli import subprocess_env
from tests.dns_server import DnsZone, dns_zone
from tests.interop.synapse_server import free_port

__all__ = ["dns_zone"]  # the session fixture, imported to be found here

TERMS = "https://ca.test/terms-of-service-v2.pdf"
DENDRITE_LITE = str(Path(sys.executable).parent / "dendrite-lite")


class _Directory(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({
            "newNonce": "http://127.0.0.1/nonce", "newAccount": "http://127.0.0.1/account",
            "newOrder": "http://127.0.0.1/order", "meta": {"termsOfService": TERMS},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def acme_directory() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Directory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/directory"
    server.shutdown()
    server.server_close()


@pytest.fixture
def wizard(tmp_path: Path, dns_zone: DnsZone, acme_directory: str) -> Callable[..., Wizard]:
    """Start the wizard, with more flags if given."""
    return lambda *extra: Wizard(tmp_path, dns_zone, acme_directory, *extra)


class Wizard:
    """One `dendrite-lite init` in a pty, with the flags every test needs."""

    def __init__(self, tmp_path: Path, zone: DnsZone, directory: str, *extra: str) -> None:
        self.config_path = tmp_path / "dendrite-lite.toml"
        self.https, self.http = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        args = [
            "init", "--config", str(self.config_path), "--data-dir", str(tmp_path / "data"),
            "--no-detect", "--dns-server", f"127.0.0.1:{zone.port}", "--acme-directory", directory,
            # Loopback ports of the test's own: 443 and 80 may be anyone's on this machine.
            "--listen-client", self.https, "--listen-acme-http", self.http, *extra,
        ]
        self.child = pexpect.spawn(
            DENDRITE_LITE, args, env=subprocess_env(), encoding="utf-8", timeout=20,
            dimensions=(60, 200),
        )

    def answer(self, prompt: str, text: str) -> str:
        """Wait for `prompt` (plain text), type `text`; return what was printed before it."""
        self.child.expect_exact(prompt)
        before: str = self.child.before
        self.child.sendline(text)
        return before.replace("\r\n", "\n")

    def finish(self) -> tuple[str, Config]:
        self.child.expect(pexpect.EOF)
        self.child.close()
        out = self.child.before.replace("\r\n", "\n")
        assert self.child.exitstatus == 0, out
        return out, load_config(self.config_path)

    def common_start(self, server_name: str) -> str:
        self.answer("(other servers connect to it; empty if unknown): ", "127.0.0.1")
        self.answer("(cannot change later): ", server_name)
        return self.answer("(direct/well-known/srv)", "")

    def acme_answers(self) -> str:
        self.answer("Email for certificate expiry warnings (optional): ", "admin@example.test")
        terms = self.answer("Do you agree to them?", "y")
        return terms

    def common_end(self) -> None:
        self.answer("(closed/token/open) [closed]: ", "")
        self.answer("Create the first admin account now? [Y/n]: ", "n")


def test_direct_with_acme_the_suggested_default(wizard: Callable[..., Wizard]) -> None:
    w = wizard()
    shown = w.common_start("fed.healthy.doctor.test")
    assert "  check: fed.healthy.doctor.test resolves to 127.0.0.1: this machine.\n" in shown
    assert (
        "  check: fed.healthy.doctor.test publishes no delegation (no .well-known, no SRV): other"
        " servers connect to fed.healthy.doctor.test:8448.\n"
    ) in shown
    # The name points here, so direct is the default answer.
    assert shown.endswith("Delegation\n")
    w.child.expect_exact("[direct]: ")
    w.answer("Public URL where clients reach this server [https://fed.healthy.doctor.test/]: ", "")
    tls = w.answer("(proxy/acme/files) [acme]: ", "")
    assert f"  check: {w.https} free; {w.http} free.\n" in tls
    assert (
        f"Suggested HTTPS: acme, because fed.healthy.doctor.test resolves here and {w.https} is free.\n"
    ) in tls
    terms = w.acme_answers()
    assert f"The certificate authority's terms of service: {TERMS}\n" in terms
    proxy = w.answer("already serve the client API?", "n")
    assert f"  check: certificates will be checked by http-01 on {w.http}.\n" in proxy
    w.common_end()
    out, config = w.finish()
    assert config.server.public_ip == "127.0.0.1"
    assert config.server.server_name == "fed.healthy.doctor.test"
    assert (config.tls.mode, config.tls.acme_agree_tos, config.tls.acme_email) == (
        "acme", True, "admin@example.test")
    assert (config.tls.acme_challenge, config.listen.acme_http) == ("http-01", w.http)
    assert config.tls.acme_names == () and config.acme_names == ("fed.healthy.doctor.test",)
    assert (config.listen.client, config.listen.federation) == (w.https, "0.0.0.0:8448")
    assert "     DNS: fed.healthy.doctor.test. 3600 IN A 127.0.0.1\n" in out
    assert ".well-known" not in out  # the server serves its own client well-known
    assert f"2. Start the server: dendrite-lite run --config {w.config_path}\n" in out
    assert f"3. Check it as other servers see it: dendrite-lite doctor --config {w.config_path}" in out


def test_well_known_for_a_name_whose_web_server_is_elsewhere(wizard: Callable[..., Wizard]) -> None:
    w = wizard()
    shown = w.common_start("nosrv.doctor.test")
    assert "  check: nosrv.doctor.test resolves to 127.0.0.3, not this machine (127.0.0.1).\n" in shown
    assert "  well-known  nosrv.doctor.test's web server publishes a file naming" in shown
    w.child.expect_exact("[well-known]: ")  # the name is elsewhere: delegate
    checks = w.answer("This machine's host name (its A/AAAA record points here) [matrix.nosrv.doctor.test]: ",
                      "fed.healthy.doctor.test")
    checks = w.answer("Public URL where clients reach this server [https://fed.healthy.doctor.test/]: ", "")
    assert "  check: fed.healthy.doctor.test resolves to 127.0.0.1: this machine.\n" in checks
    assert "  check: no .well-known file is published yet: the exact one is shown at the end.\n" in checks
    tls = w.answer("(proxy/acme/files) [acme]: ", "")
    assert "because fed.healthy.doctor.test resolves here" in tls
    w.acme_answers()
    # No question about a proxy for the client API: both APIs share port 443.
    w.common_end()
    out, config = w.finish()
    assert config.public_baseurl == "https://fed.healthy.doctor.test/"
    assert (config.listen.client, config.listen.federation) == (w.https, "")
    assert config.client_tls and config.federation_tls
    assert config.tls.acme_names == ("fed.healthy.doctor.test",)
    assert "already serve the client API" not in out
    assert (
        "     DNS: fed.healthy.doctor.test. 3600 IN A 127.0.0.1\n"
        "     On the web server of nosrv.doctor.test, https://nosrv.doctor.test/.well-known/matrix/server containing:\n"
        '       {"m.server": "fed.healthy.doctor.test:443"}\n'
        "     On the web server of nosrv.doctor.test, https://nosrv.doctor.test/.well-known/matrix/client containing:\n"
        '       {"m.homeserver": {"base_url": "https://fed.healthy.doctor.test"}}\n'
        "       served with the header Access-Control-Allow-Origin: * (web clients need it)\n"
    ) in out


def test_srv_already_published_with_another_port(
    wizard: Callable[..., Wizard], dns_zone: DnsZone
) -> None:
    w = wizard()
    port = dns_zone.ports["healthy"]
    shown = w.common_start("healthy.doctor.test")
    assert f"  check: SRV _matrix-fed._tcp.healthy.doctor.test -> fed.healthy.doctor.test:{port}.\n" in shown
    w.child.expect_exact("[srv]: ")  # what is published wins
    checks = w.answer("[fed.healthy.doctor.test]: ", "")
    checks = w.answer("Public URL where clients reach this server [https://fed.healthy.doctor.test/]: ", "")
    assert (
        f"  check: the SRV record names fed.healthy.doctor.test:{port}, not"
        " fed.healthy.doctor.test:8448: change it (shown at the end).\n"
    ) in checks
    tls = w.answer("(proxy/acme/files) [acme]: ", "")
    assert "because healthy.doctor.test, fed.healthy.doctor.test resolve here" in tls
    w.acme_answers()
    w.answer("already serve the client API?", "")
    w.common_end()
    out, config = w.finish()
    # The certificate must be for the server name (peers check it against that), and for the
    # host the clients use.
    assert config.tls.acme_names == ("healthy.doctor.test", "fed.healthy.doctor.test")
    assert (config.listen.client, config.listen.federation) == (w.https, "0.0.0.0:8448")
    assert (
        "     DNS: _matrix-fed._tcp.healthy.doctor.test. 3600 IN SRV 10 5 8448 fed.healthy.doctor.test.\n"
    ) in out


def test_srv_for_a_name_elsewhere_explains_the_certificate_rule(wizard: Callable[..., Wizard]) -> None:
    w = wizard()
    w.answer("(other servers connect to it; empty if unknown): ", "127.0.0.1")
    w.answer("(cannot change later): ", "nosrv.doctor.test")
    w.answer("(direct/well-known/srv) [well-known]: ", "srv")
    w.answer("[matrix.nosrv.doctor.test]: ", "fed.healthy.doctor.test")
    rule = w.answer("Use well-known instead? [Y/n]: ", "n")
    assert (
        "With an SRV record (and no .well-known file) other servers connect to"
        " fed.healthy.doctor.test but check that its certificate is for nosrv.doctor.test itself"
    ) in " ".join(rule.split())
    w.answer("Public URL where clients reach this server [https://fed.healthy.doctor.test/]: ", "")
    tls = w.answer("(proxy/acme/files) [proxy]: ", "")
    assert (
        "Suggested HTTPS: proxy, because nosrv.doctor.test does not resolve to 127.0.0.1 yet, so"
        " Let's Encrypt cannot check it here (acme works once it does).\n"
    ) in tls
    w.common_end()
    out, config = w.finish()
    assert config.tls.mode == "proxy"
    assert (config.listen.client, config.listen.federation) == (w.https, "127.0.0.1:8448")
    assert "     DNS: _matrix-fed._tcp.nosrv.doctor.test. 3600 IN SRV 10 5 8448 fed.healthy.doctor.test.\n" in out
    assert f"Your reverse proxy forwards https://fed.healthy.doctor.test/ to http://{w.https}" in out


def test_busy_ports_steer_the_tls_answers(wizard: Callable[..., Wizard]) -> None:
    w = wizard()
    with socket.socket() as web_server:
        # Someone listens on "port 80": certificates then come by TLS-ALPN-01 on the HTTPS port.
        web_server.bind(("127.0.0.1", int(w.http.rsplit(":", 1)[1])))
        web_server.listen()
        w.common_start("fed.healthy.doctor.test")
        w.answer("[https://fed.healthy.doctor.test/]: ", "")
        tls = w.answer("(proxy/acme/files) [acme]: ", "")
        assert f"  check: {w.https} free; {w.http} in use.\n" in tls
        w.acme_answers()
        proxy = w.answer("already serve the client API?", "n")
    assert f"  check: certificates will be checked by tls-alpn-01 on the HTTPS port ({w.http} is in use).\n" in proxy
    w.common_end()
    _, config = w.finish()
    assert (config.tls.acme_challenge, config.listen.acme_http) == ("tls-alpn-01", "")
