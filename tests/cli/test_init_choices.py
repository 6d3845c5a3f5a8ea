"""`dendrite-lite init`'s delegation and ACME answers: from flags (--non-interactive) for each
delegation choice, and the wizard's branches that need a state the real machine cannot be put
in (port 443 taken, ports needing root, terms refused), with fake probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.cli.init_tls import STAGING_DIRECTORY, acme_challenge, tls_default
from dendrite_lite.config import load_config
from dendrite_lite.delegation.local_ports import PortState
from dendrite_lite.delegation.name_checks import AddressCheck
from tests.cli.init_fakes import TERMS_URL, fake_probes
from tests.cli.test_cli import free_port, init_args, invoke


def _acme(tmp_path: Path, *extra: str) -> list[str]:
    # A loopback port 80 of the test's own, so the HTTP-01 default does not depend on port 80.
    http = f"127.0.0.1:{free_port()}"
    return init_args(tmp_path, "--tls-mode", "acme", "--agree-tos", "--listen-acme-http", http,
                     "--public-ip", "203.0.113.7", *extra)


def test_well_known_from_flags(tmp_path: Path) -> None:
    args = _acme(tmp_path, "--delegation", "well-known", "--delegated-host", "matrix.example.org",
                 "--acme-staging", "--acme-email", "ops@example.org")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert config.server.public_ip == "203.0.113.7"
    assert config.public_baseurl == "https://matrix.example.org/"
    assert (config.listen.client, config.listen.federation) == ("0.0.0.0:443", "")
    assert config.tls.acme_names == ("matrix.example.org",)
    assert (config.tls.acme_directory, config.tls.acme_challenge) == (STAGING_DIRECTORY, "http-01")
    assert config.listen.acme_http == args[args.index("--listen-acme-http") + 1]
    assert config.tls.acme_agree_tos and config.tls.acme_email == "ops@example.org"
    assert (
        "     DNS: matrix.example.org. 3600 IN A 203.0.113.7\n"
        "     On the web server of example.org, https://example.org/.well-known/matrix/server containing:\n"
        '       {"m.server": "matrix.example.org:443"}\n'
        "     On the web server of example.org, https://example.org/.well-known/matrix/client containing:\n"
        '       {"m.homeserver": {"base_url": "https://matrix.example.org"}}\n'
        "       served with the header Access-Control-Allow-Origin: * (web clients need it)\n"
    ) in result.stdout
    # Port 443 as a normal user: the hint to grant it.
    assert "As a user other than root, ports below 1024 need root or the CAP_NET_BIND_SERVICE" in result.stdout


def test_srv_from_flags_with_own_certificate(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    result = invoke(*init_args(
        tmp_path, "--delegation", "srv", "--delegated-host", "matrix.example.org",
        "--tls-mode", "files", "--tls-cert", str(tmp_path / "cert.pem"),
        "--tls-key", str(tmp_path / "key.pem"), "--public-ip", "2001:db8::7",
    ))
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.listen.client, config.listen.federation) == ("0.0.0.0:443", "0.0.0.0:8448")
    assert config.public_baseurl == "https://matrix.example.org/"
    assert "     DNS: matrix.example.org. 3600 IN AAAA 2001:db8::7\n" in result.stdout
    assert (
        "     DNS: _matrix-fed._tcp.example.org. 3600 IN SRV 10 5 8448 matrix.example.org.\n"
    ) in result.stdout


def test_direct_from_flags_with_tls_alpn_and_a_private_ca(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    result = invoke(*init_args(tmp_path, "--delegation", "direct", "--tls-mode", "acme",
                               "--agree-tos", "--acme-challenge", "tls-alpn-01", "--no-detect",
                               "--acme-directory", "https://ca.test/dir",
                               "--acme-ca-file", str(tmp_path / "ca.pem")))
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert config.tls.acme_directory == "https://ca.test/dir"
    assert config.tls.acme_ca_file == (tmp_path / "ca.pem").resolve()
    assert (config.tls.acme_challenge, config.listen.acme_http) == ("tls-alpn-01", "")
    assert config.tls.acme_names == () and config.server.public_ip == ""
    assert "     DNS: example.org. 3600 IN A <this machine's public IP>\n" in result.stdout


def test_direct_with_a_public_url_on_another_host(tmp_path: Path) -> None:
    result = invoke(*init_args(tmp_path, "--delegation", "direct", "--public-ip", "203.0.113.7",
                               "--public-baseurl", "https://chat.example.org/"))
    assert result.exit_code == 0, result.output
    assert (
        "1. Publish these DNS records and files (the doctor checks them):\n"
        "     DNS: example.org. 3600 IN A 203.0.113.7\n"
        "     DNS: chat.example.org. 3600 IN A 203.0.113.7\n"
        "2. Start the server"
    ) in result.stdout


@pytest.mark.parametrize(("extra", "message"), [
    (["--delegation", "well-known"],
     "error: --delegation well-known needs --delegated-host (this machine's name, e.g. matrix.example.org)"),
    (["--delegation", "sideways"], "error: --delegation must be one of direct, well-known, srv, not 'sideways'"),
    (["--tls-mode", "acme"], "error: --tls-mode acme needs --acme-agree-tos: agreeing to the certificate"),
    (["--acme-staging", "--acme-directory", "https://ca.test/dir"],
     "error: --acme-staging and --acme-directory both name the CA; give one"),
    (["--acme-challenge", "dns-01"], "error: --acme-challenge must be one of http-01, tls-alpn-01, not 'dns-01'"),
    (["--public-ip", "my-router"], 'error: server.public_ip: "my-router" is not an IP address'),
    (["--dns-server", "localhost"], 'error: --dns-server: "localhost" is not a valid address'),
    (["--dns-server", "localhost:53"], "error: --dns-server: 'localhost:53': give the name server's IP address"),
    # Refused before any question or port probe, with the config file's message.
    (["--tls-mode", "acme", "--agree-tos", "--listen-acme-http", "0.0.0.0:99999"],
     'error: listen.acme_http: "0.0.0.0:99999" is not a valid port (1-65535)'),
    (["--delegation", "srv", "--delegated-host", "matrix example"],
     'error: tls.acme_names[0]: "matrix example" is not a DNS host name'),
])
def test_flag_mistakes(tmp_path: Path, extra: list[str], message: str) -> None:
    result = invoke(*init_args(tmp_path, *extra))
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "dendrite-lite.toml").exists()


def _wizard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answers: list[str], *flags: str,
            **fakes: object) -> str:
    monkeypatch.chdir(tmp_path)
    fake_probes(monkeypatch, **fakes)  # type: ignore[arg-type]
    result = invoke("init", *flags, input="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    return str(result.stdout)


HERE = {"example.org": ("203.0.113.7",)}


def test_a_taken_https_port_suggests_proxy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = _wizard(monkeypatch, tmp_path, [
        "", "example.org", "", "", "",
        "",  # the suggestion: proxy
        "", "n",
    ], public_ip="203.0.113.7", addresses=HERE, ports={"0.0.0.0:443": PortState.IN_USE})
    assert "This machine's public IP: 203.0.113.7 (faked)." in out
    assert "  check: example.org resolves to 203.0.113.7: this machine." in out
    assert "  check: 0.0.0.0:443 in use; 0.0.0.0:80 free." in out
    assert (
        "Suggested HTTPS: proxy, because 0.0.0.0:443 is in use, probably by a web server: let it"
        " be the reverse proxy."
    ) in out
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.tls.mode, config.server.public_ip) == ("proxy", "203.0.113.7")


def test_ports_needing_root_still_suggest_acme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ports = {"0.0.0.0:443": PortState.NEEDS_PRIVILEGE, "0.0.0.0:80": PortState.NEEDS_PRIVILEGE}
    out = _wizard(monkeypatch, tmp_path, [
        "", "example.org", "", "", "",
        "",  # the suggestion: acme
        "", "y",  # the staging CA
        "y", "n", "", "n",
    ], public_ip="203.0.113.7", addresses=HERE, ports=ports)
    assert "  check: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability" in out
    assert "Suggested HTTPS: acme, because example.org resolves here and 0.0.0.0:443 is free." in out
    assert f"The certificate authority's terms of service: {TERMS_URL}" in out
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.tls.mode, config.tls.acme_directory) == ("acme", STAGING_DIRECTORY)
    assert (config.tls.acme_challenge, config.listen.acme_http) == ("http-01", "0.0.0.0:80")


def test_refusing_the_terms_goes_back_to_the_https_question(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = _wizard(monkeypatch, tmp_path, [
        "", "example.org", "", "", "",
        "acme", "", "n",
        "n",  # the terms: no
        "proxy", "", "n",
    ], public_ip="203.0.113.7", addresses=HERE)
    assert "Without agreeing, the CA issues no certificate: choose proxy or files." in out
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.tls.mode, config.tls.acme_agree_tos) == ("proxy", False)


def test_tls_default_and_challenge_rules() -> None:
    here = AddressCheck("example.org", ("203.0.113.7",), None, "203.0.113.7")
    away = AddressCheck("example.org", ("198.51.100.1",), None, "203.0.113.7")
    https = "0.0.0.0:443"
    assert tls_default([here], (https, PortState.FREE), "203.0.113.7").mode == "acme"
    assert tls_default([here], (https, PortState.NEEDS_PRIVILEGE), "203.0.113.7").mode == "acme"
    assert tls_default([away], (https, PortState.FREE), "203.0.113.7").reason == (
        "example.org does not resolve to 203.0.113.7 yet, so Let's Encrypt cannot check it here"
        " (acme works once it does)"
    )
    assert tls_default([here], (https, PortState.NOT_HERE), "203.0.113.7").reason == (
        "0.0.0.0:443 is not an address of this machine"
    )
    assert tls_default([here], (https, PortState.FREE), "").mode == "proxy"
    assert acme_challenge(("0.0.0.0:80", PortState.NEEDS_PRIVILEGE)) == ("http-01", "0.0.0.0:80")
    assert acme_challenge(("0.0.0.0:80", PortState.IN_USE)) == ("tls-alpn-01", "")


def test_srv_by_flag_explains_the_rule_and_keeps_the_choice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = _wizard(monkeypatch, tmp_path, ["", "example.org", "", "", "", "", "n"],
                  "--delegation", "srv", "--delegated-host", "matrix.example.org",
                  public_ip="203.0.113.7", addresses={"matrix.example.org": ("203.0.113.7",)})
    assert "but check that its certificate is for example.org itself" in out
    assert "Use well-known instead?" not in out
    assert "Suggested HTTPS: proxy, because example.org does not resolve to 203.0.113.7 yet" in out
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.tls.mode, config.listen.federation) == ("proxy", "127.0.0.1:8448")
    assert "     DNS: _matrix-fed._tcp.example.org. 3600 IN SRV 10 5 8448 matrix.example.org.\n" in out
