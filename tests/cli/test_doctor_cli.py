"""`dendrite-lite doctor`: --json shape, human output, exit codes, the configured default name.

The CLI runs its own event loop, so it runs in a worker thread while the test's loop serves the
loopback peer it checks."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.crypto.keys import new_server_key, write_signing_key
from dendrite_lite.delegation.doctor_last_run import LAST_RUN_FILE, load_last_run
from tests.integration.doctor_helpers import FakePeer, make_cert
from tests.interop.synapse_server import free_port

runner = CliRunner()
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["doctor", *args], env={"DENDRITE_LITE_CONFIG": None})


@pytest.fixture
async def healthy_peer(tmp_path: Path) -> AsyncIterator[tuple[FakePeer, Path]]:
    cert, key = make_cert(tmp_path / "tls", "IP:127.0.0.1")
    peer = await FakePeer.start(cert, key, {})
    yield peer, cert
    await peer.stop()


@needs_openssl
async def test_json_and_exit_0_for_a_healthy_peer(healthy_peer: tuple[FakePeer, Path]) -> None:
    peer, cert = healthy_peer
    result = await asyncio.to_thread(invoke, peer.server_name, "--ca-file", str(cert), "--json")
    assert result.exit_code == 0, result.output
    findings = json.loads(result.stdout)
    assert isinstance(findings, list) and findings
    for f in findings:
        assert set(f) == {"check", "area", "status", "why", "fix"}
        assert f["status"] in ("OK", "WARN", "FAIL")
    assert [f["check"] for f in findings] == [
        "server_name", "well_known", "srv", "dns.addresses", "tls.chain", "tls.name", "tls.expiry",
        "keys.server_name", "keys.valid_until", "keys.signature", "federation.version", "federation.clock",
        "client.well_known",
    ]
    assert {f["status"] for f in findings[:-1]} == {"OK"}
    # Clients look on port 443 of the hostname, where nothing listens here.
    assert findings[-1]["status"] == "WARN"
    assert findings[-1]["why"].startswith("https://127.0.0.1/.well-known/matrix/client has no HTTPS answer")


@needs_openssl
async def test_without_the_ca_the_certificate_fails_exit_1(healthy_peer: tuple[FakePeer, Path]) -> None:
    peer, _ = healthy_peer
    result = await asyncio.to_thread(invoke, peer.server_name, "--json")
    assert result.exit_code == 1
    chain = next(f for f in json.loads(result.stdout) if f["check"] == "tls.chain")
    assert chain["status"] == "FAIL" and "self-signed certificate" in chain["why"]


@needs_openssl
async def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "IP:127.0.0.1", not_after_days=3)
    peer = await FakePeer.start(cert, key, {})
    try:
        result = await asyncio.to_thread(invoke, peer.server_name, "--ca-file", str(cert))
    finally:
        await peer.stop()
    assert result.exit_code == 0, result.output
    assert "WARN" in result.stdout and "fix: Renew the certificate now" in result.stdout
    assert result.stdout.strip().endswith("0 FAIL, 2 WARN, 11 OK")  # the certificate, the client well-known


def test_human_output_grouped_by_area_without_colours_off_a_terminal() -> None:
    name = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = invoke(name)
    assert result.exit_code == 1
    out = result.stdout
    assert "\x1b[" not in out  # CliRunner is not a terminal
    assert out.startswith(f"Checking {name} as other Matrix servers and clients see it.\n")
    headers = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert headers[1:] == [
        "server name", "delegation", "dns", "tls", "keys", "federation", "client", "3 FAIL, 2 WARN, 4 OK",
    ]
    assert f"  FAIL  {name}: cannot connect (ConnectionRefusedError" in out
    assert "        fix: Make the federation listener reachable on port" in out


def test_human_output_coloured_on_a_terminal() -> None:
    """click keeps the styles when the output is a terminal (color=True stands for one)."""
    name = f"127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["doctor", name], env={"DENDRITE_LITE_CONFIG": None}, color=True)
    assert result.exit_code == 1
    assert "\x1b[1mtls\x1b[0m" in result.stdout  # area headers in bold
    assert "\x1b[31m\x1b[1mFAIL\x1b[0m" in result.stdout  # FAIL in red
    assert "\x1b[32m\x1b[1mOK  \x1b[0m" in result.stdout  # OK in green


def test_invalid_server_name_exits_1() -> None:
    result = invoke("--json", "not a name")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [{
        "check": "server_name", "area": "server name", "status": "FAIL",
        "why": "'not a name' is not a valid server name.",
        "fix": "Use a hostname or IP literal with an optional port, e.g. example.org or"
        " matrix.example.org:8448 (spec appendices §Server Name); it is server.server_name in the"
        " config and cannot change once users exist.",
    }]


def test_default_is_the_configured_server_name(tmp_path: Path) -> None:
    name = f"127.0.0.1:{free_port()}"
    config = tmp_path / "dendrite-lite.toml"
    config.write_text(f'[server]\nserver_name = "{name}"\n')
    result = invoke("--config", str(config), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["why"] == f"'{name}' is an IP literal with the explicit port {name.split(':')[1]}."


def test_no_name_and_no_config_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2
    assert "no config file at" in result.output


def test_help_says_why_there_is_no_skip_verify() -> None:
    result = runner.invoke(app, ["doctor", "--help"], env={"COLUMNS": "200"})
    assert "--ca-file" in result.stdout
    assert "no way to skip certificate checks: peers verify your certificate" in result.stdout


def test_ca_file_that_is_not_pem_is_a_usage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    result = invoke("example.org", "--ca-file", str(bogus))
    assert result.exit_code == 2
    assert "error: --ca-file: cannot load the certificates" in result.output


def _local_server_with_a_readable_key(tmp_path: Path, server_name: str, extra: str = "") -> tuple[Path, Path]:
    """A config of `server_name` (data in tmp_path/data) whose signing key is mode 0644."""
    config = tmp_path / "dendrite-lite.toml"
    config.write_text(
        f'[server]\nserver_name = "{server_name}"\npublic_baseurl = "https://127.0.0.1/"\n'
        f'data_dir = "data"\n{extra}'
    )
    key = tmp_path / "data" / "signing.key"
    write_signing_key(key, new_server_key())
    key.chmod(0o644)
    return config, key


@needs_openssl
async def test_local_setup_open_registration_and_a_readable_key(
    healthy_peer: tuple[FakePeer, Path], tmp_path: Path
) -> None:
    """Without SERVER_NAME the configured server's local setup is checked too: open registration
    on 0.0.0.0 warns, a signing key readable by others fails (exit 1 though federation is fine)."""
    peer, cert = healthy_peer
    config, key = _local_server_with_a_readable_key(
        tmp_path, peer.server_name, '[listen]\nclient = "0.0.0.0:8008"\n[registration]\nmode = "open"\n'
    )
    result = await asyncio.to_thread(invoke, "--config", str(config), "--ca-file", str(cert))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert out.startswith(
        f"Checking {peer.server_name} as other Matrix servers and clients see it, and its local setup ({config}).\n"
    )
    assert "\nlocal\n" in out
    assert (
        '  WARN  registration.mode is "open" and the client listener binds 0.0.0.0:8008: anyone on the'
        " internet can create accounts"
    ) in out
    assert '        fix: Set `mode = "token"` in [registration] (registration.mode = "token"), restart' in out
    assert f"  FAIL  The signing key {key} is readable by its group and everyone (mode 0644)" in out
    assert f"        fix: `chmod 600 {key}`" in out
    as_json = await asyncio.to_thread(invoke, "--config", str(config), "--ca-file", str(cert), "--json")
    assert [f["check"] for f in json.loads(as_json.stdout) if f["status"] == "FAIL"] == ["local.signing_key"]


def test_a_server_name_argument_skips_the_local_checks(tmp_path: Path) -> None:
    """The config's files are ours to inspect only for the configured server."""
    config = tmp_path / "dendrite-lite.toml"
    config.write_text('[server]\nserver_name = "example.org"\n[registration]\nmode = "open"\n'
                      '[listen]\nclient = "0.0.0.0:8008"\n')
    result = invoke(f"127.0.0.1:{free_port()}", "--config", str(config), "--json")
    assert not [f for f in json.loads(result.stdout) if f["area"] == "local"]


@needs_openssl
async def test_a_check_of_the_configured_server_leaves_its_summary_for_the_dashboard(
    healthy_peer: tuple[FakePeer, Path], tmp_path: Path
) -> None:
    peer, cert = healthy_peer
    config, _ = _local_server_with_a_readable_key(tmp_path, peer.server_name)
    before = time.time()
    result = await asyncio.to_thread(invoke, "--config", str(config), "--ca-file", str(cert))
    assert result.exit_code == 1, result.output
    summary = load_last_run(tmp_path / "data")
    assert summary is not None
    assert summary["server_name"] == peer.server_name
    assert summary["worst"] == "FAIL"
    assert summary["counts"]["FAIL"] == 1 and summary["counts"]["OK"] > 0
    assert [p["check"] for p in summary["problems"] if p["status"] == "FAIL"] == ["local.signing_key"]
    assert before <= summary["ran_at"] <= time.time()
    # A SERVER_NAME on the command line may be anyone's: nothing is saved for it.
    (tmp_path / "data" / LAST_RUN_FILE).unlink()
    other = await asyncio.to_thread(invoke, peer.server_name, "--ca-file", str(cert))
    assert other.exit_code == 0, other.output
    assert load_last_run(tmp_path / "data") is None
