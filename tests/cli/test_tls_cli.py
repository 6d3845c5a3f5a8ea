"""`dendrite-lite tls status|renew`: what is printed from state.json and certificate.pem, the exit
codes, and renewal through a running server (the test holds the renewer lock and plays the
renewer) or in the command's own process."""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.config import Config
from dendrite_lite.tls import manager
from dendrite_lite.tls.state import (
    CERTIFICATE_FILE,
    RENEW_REQUEST_FILE,
    RENEWER_LOCK_FILE,
    AcmeState,
    load_state,
    save_state,
    write_private,
)
from tests.interop.synapse_server import free_port

runner = CliRunner()
DAY = 86400.0
ISSUER = "CN=Test Intermediate R7,O=Test CA,C=US"


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["tls", *args], env={"DENDRITE_LITE_CONFIG": None})


def write_config(tmp_path: Path, mode: str = "acme", extra: str = "") -> Path:
    if mode == "acme":
        extra = 'acme_email = "admin@example.org"\nacme_agree_tos = true\n' + extra
    path = tmp_path / "dendrite-lite.toml"
    path.write_text(
        f'[server]\nserver_name = "example.org"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[tls]\nmode = "{mode}"\n{extra}'
    )
    return path


def acme_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "acme"


def write_certificate(
    directory: Path, names: list[str], not_before: float, not_after: float
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name.from_rfc4514_string(ISSUER))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(directory / CERTIFICATE_FILE, cert.public_bytes(serialization.Encoding.PEM))


def utc(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- status -------------------------------------------------------------------------------------
def test_status_without_state_or_certificate(tmp_path: Path) -> None:
    result = invoke("status", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    assert result.stdout == "no certificate yet: the server has not tried yet\n"


def test_status_with_a_certificate(tmp_path: Path) -> None:
    now = time.time()
    not_before, not_after = now - 30 * DAY, now + 60 * DAY + 600
    write_certificate(acme_dir(tmp_path), ["example.org", "matrix.example.org"], not_before, not_after)
    save_state(acme_dir(tmp_path), AcmeState(
        names=("example.org", "matrix.example.org"), issuer=ISSUER, not_before=not_before,
        not_after=not_after, next_renewal=now + 30 * DAY + 600, challenge="http-01",
        last_attempt=now - 30 * DAY, last_success=now - 30 * DAY,
    ))
    config = write_config(tmp_path, extra='acme_names = ["example.org", "matrix.example.org"]\n')
    result = invoke("status", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "names:        example.org, matrix.example.org",
        f"issuer:       {ISSUER}",
        f"expires:      {utc(not_after)} (in 60 days)",
        f"next renewal: {utc(now + 30 * DAY + 600)} (in 30 days)",
        "challenge:    http-01",
        f"last success: {utc(now - 30 * DAY)} (30 days ago)",
        "last error:   none",
    ]

    data = json.loads(invoke("status", "--config", str(config), "--json").stdout)
    assert data["ok"] is True and data["certificate"] is True
    assert data["names"] == ["example.org", "matrix.example.org"]
    assert data["issuer"] == ISSUER
    assert data["not_after"] == pytest.approx(int(not_after))  # X.509 times are whole seconds
    assert 60 < data["days_left"] < 60.01
    assert data["next_renewal"] == pytest.approx(now + 30 * DAY + 600)
    assert (data["challenge"], data["last_error"], data["failures"], data["next_attempt"]) == (
        "http-01", "", 0, None,
    )
    assert set(data) == {
        "ok", "certificate", "certificate_error", "names", "wanted_names", "issuer", "not_before",
        "not_after", "days_left", "next_renewal", "challenge", "directory", "last_attempt",
        "last_success", "last_error", "failures", "next_attempt",
    }


def test_the_certificate_file_wins_over_a_stale_state(tmp_path: Path) -> None:
    now = time.time()
    # state.json still describes the previous certificate, e.g. a crash between the two writes.
    save_state(acme_dir(tmp_path), AcmeState(
        names=("old.example.org",), issuer="CN=Old CA", not_before=now - 100 * DAY,
        not_after=now - 10 * DAY, next_renewal=now - 40 * DAY, last_success=now - 100 * DAY,
    ))
    write_certificate(acme_dir(tmp_path), ["example.org"], now - DAY, now + 89 * DAY)
    result = invoke("status", "--config", str(write_config(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["names"], data["issuer"]) == (["example.org"], ISSUER)
    # A third of the file's 90-day lifetime before its end: 59 days from now.
    assert data["next_renewal"] == pytest.approx(now + 59 * DAY, abs=2)


def test_status_of_a_failing_renewer_expiring_soon(tmp_path: Path) -> None:
    now = time.time()
    write_certificate(acme_dir(tmp_path), ["example.org"], now - 85 * DAY, now + 5 * DAY)
    error = "the CA could not fetch http://example.org/.well-known/acme-challenge/x: connection refused"
    save_state(acme_dir(tmp_path), AcmeState(
        names=("example.org",), issuer=ISSUER, not_before=now - 85 * DAY, not_after=now + 5 * DAY,
        next_renewal=now - 25 * DAY, last_attempt=now - 3600, last_success=now - 85 * DAY,
        last_error=error, failures=4, next_attempt=now + 7 * 3600 + 600,
    ))
    result = invoke("status", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"last error:   {error}" in lines
    assert f"failures:     4 in a row; next attempt {utc(now + 7 * 3600 + 600)} (in 7 h)" in lines
    assert lines[-1] == "EXPIRES WITHIN 7 DAYS: renewal keeps failing; see the last error above"

    data = json.loads(invoke("status", "--config", str(write_config(tmp_path)), "--json").stdout)
    assert (data["ok"], data["failures"], data["last_error"]) == (False, 4, error)
    assert data["next_attempt"] == pytest.approx(now + 7 * 3600 + 600)


def test_status_of_an_expired_certificate(tmp_path: Path) -> None:
    now = time.time()
    write_certificate(acme_dir(tmp_path), ["example.org"], now - 95 * DAY, now - 5 * DAY)
    result = invoke("status", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    assert f"expires:      {utc(now - 5 * DAY)} (5 days ago)" in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == "EXPIRED: peers and clients refuse it; see the last error above"


def test_status_without_a_certificate_shows_the_last_error(tmp_path: Path) -> None:
    now = time.time()
    save_state(acme_dir(tmp_path), AcmeState(
        last_attempt=now, last_error="urn:ietf:params:acme:error:rateLimited: too many certificates",
        failures=1, next_attempt=now + 3 * 3600,
    ))
    result = invoke("status", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "no certificate yet: urn:ietf:params:acme:error:rateLimited: too many certificates",
        f"failures:     1 in a row; next attempt {utc(now + 3 * 3600)} (in 3 h)",
    ]


def test_status_of_an_unreadable_certificate_file(tmp_path: Path) -> None:
    write_private(acme_dir(tmp_path) / CERTIFICATE_FILE, b"not a certificate\n")
    result = invoke("status", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    path = acme_dir(tmp_path) / CERTIFICATE_FILE
    assert result.stdout == f"no certificate yet: {path} holds no readable PEM certificate\n"


def test_status_says_when_the_config_wants_other_names(tmp_path: Path) -> None:
    now = time.time()
    write_certificate(acme_dir(tmp_path), ["example.org"], now - DAY, now + 89 * DAY)
    config = write_config(tmp_path, extra='acme_names = ["example.org", "matrix.example.org"]\n')
    result = invoke("status", "--config", str(config))
    assert result.exit_code == 0
    assert ("config wants: example.org, matrix.example.org (the next attempt gets them)"
            in result.stdout.splitlines())


@pytest.mark.parametrize("command", ["status", "renew"])
def test_not_acme_mode(tmp_path: Path, command: str) -> None:
    result = invoke(command, "--config", str(write_config(tmp_path, mode="proxy")))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        'error: tls.mode is "proxy", not "acme": dendrite-lite gets no certificate itself'
    )


def test_help_documents_the_exit_codes() -> None:
    result = invoke("status", "--help")
    assert result.exit_code == 0
    assert "Exit 0 when a valid certificate exists that does not expire within 7 days" in result.stdout


# --- renew through a running server ---------------------------------------------------------------
@pytest.fixture
def server_lock(tmp_path: Path) -> Iterator[Path]:
    """Hold the renewer lock, as a running server does."""
    directory = acme_dir(tmp_path)
    directory.mkdir(parents=True)
    fd = os.open(directory / RENEWER_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield directory
    os.close(fd)


def play_renewer(directory: Path, outcome: dict[str, Any]) -> threading.Thread:
    """A renewer that waits for the request, takes it away, and records `outcome`."""

    def run() -> None:
        request = directory / RENEW_REQUEST_FILE
        deadline = time.monotonic() + 10
        while not request.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        request.unlink()
        time.sleep(0.3)  # the order takes a while; the command keeps waiting
        now = time.time()
        save_state(directory, dataclasses.replace(load_state(directory), last_attempt=now, **{
            k: (now if v == "now" else v) for k, v in outcome.items()
        }))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_renew_asks_the_running_server_and_reports_success(tmp_path: Path, server_lock: Path) -> None:
    now = time.time()
    # An attempt from before the request is not the answer.
    save_state(server_lock, AcmeState(last_attempt=now - DAY, last_error="old failure", failures=1))
    renewer = play_renewer(server_lock, {
        "names": ("example.org",), "not_after": now + 90 * DAY, "last_success": "now",
        "last_error": "", "failures": 0,
    })
    result = invoke("renew", "--config", str(write_config(tmp_path)), "--wait", "10")
    renewer.join()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"asked the running server to renew (it holds {server_lock / RENEWER_LOCK_FILE}); "
        "waiting up to 10 s"
    )
    assert lines[1] == (
        f"renewed: a new certificate for example.org, valid until {utc(now + 90 * DAY)} (in 90 days)"
    )


def test_renew_through_the_server_reports_its_failure(tmp_path: Path, server_lock: Path) -> None:
    renewer = play_renewer(server_lock, {
        "last_error": "the CA refused the order: rateLimited", "failures": 2,
    })
    result = invoke("renew", "--config", str(write_config(tmp_path)), "--wait", "10")
    renewer.join()
    assert result.exit_code == 1
    assert result.stderr == "error: renewal failed: the CA refused the order: rateLimited\n"


def test_renew_times_out_when_the_server_does_not_answer(tmp_path: Path, server_lock: Path) -> None:
    started = time.monotonic()
    result = invoke("renew", "--config", str(write_config(tmp_path)), "--wait", "0.5")
    assert 0.5 <= time.monotonic() - started < 5
    assert result.exit_code == 1
    request = server_lock / RENEW_REQUEST_FILE
    assert result.stderr.splitlines() == [
        "error: the server did not record a renewal within 0.5 s",
        (f"The request stays in {request}: the server renews when it gets to it. Its log says"
         " what it is doing; `dendrite-lite tls status` shows the outcome."),
    ]
    assert request.exists()
    assert request.stat().st_mode & 0o777 == 0o600


# --- renew in this process --------------------------------------------------------------------------
@dataclasses.dataclass
class FakeRenewal:
    """Stands in for tls.manager.renew_standalone: records its config, returns `result`."""

    result: AcmeState = dataclasses.field(default_factory=AcmeState)
    calls: list[Config] = dataclasses.field(default_factory=list)
    busy: str = ""  # raise RenewerBusy with this message instead

    async def __call__(self, config: Config) -> AcmeState:
        self.calls.append(config)
        if self.busy:
            raise manager.RenewerBusy(self.busy)
        return self.result


@pytest.fixture
def standalone(monkeypatch: pytest.MonkeyPatch) -> FakeRenewal:
    fake = FakeRenewal()
    monkeypatch.setattr(manager, "renew_standalone", fake)
    return fake


@pytest.mark.parametrize("lock_file", [False, True])
def test_renew_without_a_server_renews_here(
    tmp_path: Path, standalone: FakeRenewal, lock_file: bool
) -> None:
    if lock_file:  # left by a server that stopped: nobody holds it
        acme_dir(tmp_path).mkdir(parents=True)
        (acme_dir(tmp_path) / RENEWER_LOCK_FILE).touch()
    now = time.time()
    standalone.result = AcmeState(
        names=("example.org",), not_after=now + 90 * DAY, last_attempt=now, last_success=now,
    )
    result = invoke("renew", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert [c.acme_dir for c in standalone.calls] == [acme_dir(tmp_path)]
    assert result.stdout.splitlines() == [
        "no running server holds the renewer lock: renewing in this process",
        f"renewed: a new certificate for example.org, valid until {utc(now + 90 * DAY)} (in 90 days)",
    ]
    assert not (acme_dir(tmp_path) / RENEW_REQUEST_FILE).exists()


def test_renew_here_failing_exits_1(tmp_path: Path, standalone: FakeRenewal) -> None:
    now = time.time()
    standalone.result = AcmeState(
        last_attempt=now, last_error="cannot listen on 0.0.0.0:80 (listen.acme_http): permission denied",
        failures=1,
    )
    result = invoke("renew", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    assert result.stderr == (
        "error: renewal failed: cannot listen on 0.0.0.0:80 (listen.acme_http): permission denied\n"
    )


def test_renew_here_when_the_challenge_port_is_taken(tmp_path: Path, standalone: FakeRenewal) -> None:
    standalone.busy = "cannot listen on 0.0.0.0:80 (listen.acme_http) for the challenge: Address in use"
    result = invoke("renew", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 1
    assert result.stderr == f"error: {standalone.busy}\n"


def test_renew_here_for_real_records_an_unreachable_directory(tmp_path: Path) -> None:
    # The real renew_standalone: it serves the challenge on a loopback port of its own, then
    # fails to reach the CA (a closed loopback port) and records why, with the back-off.
    port, challenge_port = free_port(), free_port()
    config = write_config(tmp_path, extra=(
        f'acme_directory = "https://127.0.0.1:{port}/directory"\nacme_challenge = "http-01"\n'
        f'[listen]\nacme_http = "127.0.0.1:{challenge_port}"\n'
    ))
    result = invoke("renew", "--config", str(config))
    assert result.exit_code == 1, result.output
    state = load_state(acme_dir(tmp_path))
    assert state.failures == 1 and state.last_error and state.last_success is None
    assert result.stderr == f"error: renewal failed: {state.last_error}\n"
    assert f"127.0.0.1:{port}" in state.last_error
