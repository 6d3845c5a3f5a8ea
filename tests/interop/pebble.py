"""Pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv (its DNS) on loopback, once
per test session.

- challtestsrv answers DNS for the test names (`Pebble.add_name`): Pebble's validator resolves
  them there and connects to the address given, on `http_port` (HTTP-01) or `tls_port`
  (TLS-ALPN-01): the ports a test server binds for listen.acme_http / its TLS listener.
- Debian's pebble ships no certificate for its own HTTPS: a throwaway CA made here signs one, and
  `ca_file` is what tls.acme_ca_file trusts.
- Pebble makes a new root at every start: `root_pem()` fetches it, to verify issued chains.

Tests use the `pebble` fixture: `from tests.interop.pebble import pebble` (one instance for the
session, whichever modules import it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dendrite_lite.tls.state import AcmeState, load_state
from tests.conftest import RunningServer, launch
from tests.peers import find_program, peer_missing

__all__ = [
    "Pebble",
    "TlsConnection",
    "acme_overrides",
    "connect_tls",
    "dns_names",
    "free_port",
    "pebble",
    "relaunch",
    "wait_for_state",
]

PEBBLE_EXAMPLE_CONFIG = Path("/usr/share/doc/pebble/examples/pebble-config.json")


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 right now (DNS needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no free port")


@dataclass
class Pebble:
    directory: str  # the ACME directory URL (tls.acme_directory)
    ca_file: Path  # the CA of Pebble's own HTTPS (tls.acme_ca_file)
    http_port: int  # where the validator connects for HTTP-01
    tls_port: int  # where the validator connects for TLS-ALPN-01
    management: str
    challtestsrv: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_name(self, name: str, address: str = "127.0.0.1") -> None:
        resp = httpx.post(f"{self.challtestsrv}/add-a", json={"host": name, "addresses": [address]})
        resp.raise_for_status()

    def https(self) -> ssl.SSLContext:
        """Trusts Pebble's own HTTPS (directory and management)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def root_pem(self) -> bytes:
        """The root Pebble issues under (new at each start)."""
        resp = httpx.get(f"{self.management}/roots/0", verify=self.https())
        resp.raise_for_status()
        return resp.content

    def stop(self) -> None:
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _https_certificate(workdir: Path) -> Path:
    """A CA, and a certificate it signs for 127.0.0.1/localhost (Pebble's own listener);
    returns the CA file. Files in `workdir`: ca.pem, cert.pem, key.pem."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (workdir / "ca.pem").write_bytes(ca.public_bytes(pem))
    (workdir / "cert.pem").write_bytes(cert.public_bytes(pem))
    (workdir / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return workdir / "ca.pem"


def _wait_until_up(
    check: Callable[[], object], what: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            check()
            return
        except (httpx.HTTPError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in 15 s: {log.read_text()[-2000:]}")


def start_pebble(workdir: Path) -> Pebble:
    pebble_bin, challtestsrv_bin = find_program("pebble"), find_program("pebble-challtestsrv")
    if pebble_bin is None or challtestsrv_bin is None or not PEBBLE_EXAMPLE_CONFIG.exists():
        peer_missing("Pebble is not installed (Debian package `pebble`)")
    dns_port, dns_mgmt, listen, mgmt, http_port, tls_port = (free_port() for _ in range(6))
    ca_file = _https_certificate(workdir)
    config = json.loads(PEBBLE_EXAMPLE_CONFIG.read_text())
    config["pebble"].update(
        listenAddress=f"127.0.0.1:{listen}",
        managementListenAddress=f"127.0.0.1:{mgmt}",
        certificate=str(workdir / "cert.pem"),
        privateKey=str(workdir / "key.pem"),
        httpPort=http_port,
        tlsPort=tls_port,
    )
    (workdir / "pebble-config.json").write_text(json.dumps(config))
    inst = Pebble(
        directory=f"https://127.0.0.1:{listen}/dir",
        ca_file=ca_file,
        http_port=http_port,
        tls_port=tls_port,
        management=f"https://127.0.0.1:{mgmt}",
        challtestsrv=f"http://127.0.0.1:{dns_mgmt}",
    )
    dns_log, pebble_log = workdir / "challtestsrv.log", workdir / "pebble.log"
    try:
        dns = subprocess.Popen(
            [challtestsrv_bin, "-dns01", f"127.0.0.1:{dns_port}", "-management",
             f"127.0.0.1:{dns_mgmt}", "-http01", "", "-https01", "", "-tlsalpn01", "",
             "-defaultIPv6", ""],
            stdout=dns_log.open("wb"), stderr=subprocess.STDOUT,
        )
        inst.processes.append(dns)
        _wait_until_up(lambda: httpx.post(f"{inst.challtestsrv}/clear-request-history",
                                          json={"host": "x", "type": "DNS"}),
                       "pebble-challtestsrv", dns, dns_log)
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
               "PEBBLE_AUTHZREUSE": "0"}
        server = subprocess.Popen(
            [pebble_bin, "-config", str(workdir / "pebble-config.json"),
             "-dnsserver", f"127.0.0.1:{dns_port}"],
            stdout=pebble_log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=workdir,
        )
        inst.processes.append(server)
        _wait_until_up(lambda: httpx.get(inst.directory, verify=inst.https()).raise_for_status(),
                       "pebble", server, pebble_log)
    except BaseException:
        inst.stop()
        raise
    return inst


_RUNNING: list[Pebble] = []


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    # Each module importing this fixture gets its own fixture definition; the instance is shared.
    if _RUNNING:
        yield _RUNNING[0]
        return
    inst = start_pebble(tmp_path_factory.mktemp("pebble"))
    _RUNNING.append(inst)
    try:
        yield inst
    finally:
        _RUNNING.clear()
        inst.stop()


# --- what the ACME tests share --------------------------------------------------------------


def acme_overrides(
    pebble: Pebble, *names: str, challenge: str = "http-01", **extra: Any
) -> dict[str, Any]:
    """Server overrides getting a certificate for `names` from Pebble: HTTP-01 on Pebble's
    http_port, or TLS-ALPN-01 with the federation listener on its tls_port."""
    overrides: dict[str, Any] = {
        "tls.mode": "acme",
        "tls.acme_directory": pebble.directory,
        "tls.acme_ca_file": pebble.ca_file,
        "tls.acme_agree_tos": True,
        "tls.acme_names": names,
        "tls.acme_challenge": challenge,
        "listen.acme_http": f"127.0.0.1:{pebble.http_port}" if challenge == "http-01" else "",
    }
    if challenge == "tls-alpn-01":
        overrides["listen.federation"] = f"127.0.0.1:{pebble.tls_port}"
    overrides.update(extra)
    return overrides


async def relaunch(data_dir: Path, overrides: dict[str, Any]) -> RunningServer:
    """A server again on `data_dir` (its acme/ directory kept): a restart. launch() writes a new
    signing key, which the database does not mind."""
    (data_dir / "signing.key").unlink(missing_ok=True)
    return await launch(data_dir, overrides)


async def wait_for_state(
    acme_dir: Path, done: Callable[[AcmeState], bool], timeout: float = 20.0
) -> AcmeState:
    deadline = time.monotonic() + timeout
    while True:
        state = load_state(acme_dir)
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"state.json did not get there in {timeout} s: {state}")
        await asyncio.sleep(0.05)


@dataclass
class TlsConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    certificate: x509.Certificate  # the leaf the server presented

    async def get(self, path: str, host: str) -> int:
        """One HTTP/1.1 request on this connection; its status code."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().split("\r\n")
        length = next(int(v) for k, _, v in (h.partition(": ") for h in lines[1:])
                      if k.lower() == "content-length")
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


async def connect_tls(port: int, name: str, root_pem: bytes | None) -> TlsConnection:
    """A TLS connection to 127.0.0.1:port with SNI `name`, verifying the chain to `root_pem`
    and the name (no verification when None)."""
    if root_pem is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=root_pem.decode())
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                  server_hostname=name)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return TlsConnection(reader, writer, x509.load_der_x509_certificate(der))


def dns_names(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))
