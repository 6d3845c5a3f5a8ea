"""coturn (Debian package coturn), the TURN server self-hosters run, on loopback once per test
module, with `use-auth-secret` and `static-auth-secret = SECRET` in the realm REALM.

Tests use the fixtures by importing them (`from tests.interop.coturn import coturn`):
- `coturn`: (coturn's port, UDP and TCP, no TLS; the port of turnutils_peer, an echoing far end
  of a call);
- `coturn_tls`: (a coturn's TLS port, the certificate it serves for IP:127.0.0.1, to trust).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.doctor_helpers import make_cert
from tests.interop.synapse_server import free_port
from tests.peers import find_program, peer_missing

__all__ = ["REALM", "SECRET", "coturn", "coturn_tls"]

SECRET = "kitchen-table"
REALM = "example.org"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(coturn's port, the echoing peer's port)."""
    peer = find_program("turnutils_peer")
    if peer is None or find_program("turnutils_uclient") is None:
        peer_missing("coturn (Debian package coturn) is not installed")
    work = tmp_path_factory.mktemp("coturn")
    port, peer_port = free_port(), free_port()
    echo = subprocess.Popen(
        [peer, "-L", "127.0.0.1", "-p", str(peer_port)],
        stdout=(work / "peer.log").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        with _turnserver(work, port, "--no-tls"):
            _wait_listening(peer_port, echo, work / "peer.log")
            yield port, peer_port
    finally:
        echo.terminate()
        echo.wait(timeout=10)


@pytest.fixture(scope="module")
def coturn_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(coturn's TLS port, its certificate)."""
    work = tmp_path_factory.mktemp("coturn-tls")
    cert, key = make_cert(work / "cert", "IP:127.0.0.1")
    port = free_port()
    with _turnserver(work, free_port(), f"--tls-listening-port={port}", f"--cert={cert}", f"--pkey={key}"):
        yield port, cert


@contextlib.contextmanager
def _turnserver(work: Path, port: int, *options: str) -> Iterator[None]:
    turnserver = find_program("turnserver")
    if turnserver is None:
        peer_missing("coturn (Debian package coturn) is not installed")
    relay = 20000 + port % 20000  # a relay port range of its own, away from ephemeral ports
    proc = subprocess.Popen(
        [
            turnserver, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
            f"--listening-port={port}", f"--min-port={relay}", f"--max-port={relay + 50}",
            "--use-auth-secret", f"--static-auth-secret={SECRET}", f"--realm={REALM}",
            "--no-dtls", "--no-cli", "--allow-loopback-peers", *options,
            f"--pidfile={work / 'pid'}", f"--userdb={work / 'db'}", "--log-file=stdout",
        ],
        stdout=(work / "turn.log").open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(port, proc, work / "turn.log")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited: {log.read_text()[-2000:]}")  # type: ignore[index]
        probe = subprocess.run(["ss", "-lnu", f"sport = :{port}"], capture_output=True, text=True, check=False)
        if probe.returncode != 0 or f":{port}" in probe.stdout:
            time.sleep(0.3)  # `ss` missing: give coturn a moment instead
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port}")
