"""A real Synapse (from .venv-synapse) for federation interop tests, and self-signed TLS
certificates for loopback servers (ours and Synapse's).

`SynapseServer.start(workdir)` writes a homeserver.yaml for server_name "127.0.0.1:<port>"
(TLS listener with a self-signed certificate, SQLite, no rate limits, no certificate checks,
loopback allowed, no trusted key servers, registration by shared secret), runs it, and waits
until it answers. Logs go to <workdir>/homeserver.log.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = [
    "SYNAPSE_PYTHON",
    "synapse_available",
    "free_port",
    "write_self_signed_cert",
    "tls_overrides",
    "SynapseServer",
]

REPO = Path(__file__).resolve().parents[2]
SYNAPSE_PYTHON = REPO / ".venv-synapse" / "bin" / "python"
SHARED_SECRET = "interop-shared-secret"
# Synapse has no switch for "no rate limits"; every limiter gets a rate nothing reaches.
_UNLIMITED = "{per_second: 10000, burst_count: 100000}"
START_TIMEOUT_S = 90.0


def synapse_available() -> bool:
    return SYNAPSE_PYTHON.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CERT_SCRIPT = """
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
ip, cert_path, key_path = sys.argv[1:4]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
        .sign(key, hashes.SHA256()))
open(cert_path, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(key_path, "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"""


def write_self_signed_cert(directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path] | None:
    """A fresh self-signed certificate for `ip` (SAN IP) and its key, or None if neither the
    openssl CLI nor a Python with `cryptography` (Synapse's venv has it) is available."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={ip}",
             "-addext", f"subjectAltName=IP:{ip}"],
            check=True, capture_output=True,
        )
        return cert, key
    if synapse_available():
        subprocess.run([str(SYNAPSE_PYTHON), "-c", _CERT_SCRIPT, ip, str(cert), str(key)], check=True)
        return cert, key
    return None


_CONFIG = """\
server_name: "{server_name}"
pid_file: "{workdir}/homeserver.pid"
public_baseurl: "https://{server_name}/"
report_stats: false
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: true
    x_forwarded: false
    resources:
      - names: [client, federation, keys]
        compress: false
tls_certificate_path: "{cert}"
tls_private_key_path: "{key}"
database:
  name: sqlite3
  args:
    database: "{workdir}/homeserver.db"
log_config: "{workdir}/log.yaml"
media_store_path: "{workdir}/media"
signing_key_path: "{workdir}/signing.key"
registration_shared_secret: "{secret}"
enable_registration: false
federation_verify_certificates: false
trusted_key_servers: []
suppress_key_server_warning: true
ip_range_blacklist: []
url_preview_enabled: false
# The public room directory both ways (Synapse's defaults refuse both).
allow_public_rooms_over_federation: true
room_list_publication_rules:
  - action: allow
enable_metrics: false
presence:
  enabled: true
rc_message: {unlimited}
rc_registration: {unlimited}
rc_login:
  address: {unlimited}
  account: {unlimited}
  failed_attempts: {unlimited}
rc_joins:
  local: {unlimited}
  remote: {unlimited}
rc_joins_per_room: {unlimited}
rc_invites:
  per_room: {unlimited}
  per_user: {unlimited}
  per_issuer: {unlimited}
rc_federation:
  window_size: 1000
  sleep_limit: 10000
  sleep_delay: 0
  reject_limit: 100000
  concurrent: 1000
rc_admin_redaction: {unlimited}
rc_3pid_validation: {unlimited}
rc_presence:
  per_user: {unlimited}
rc_delayed_event_mgmt: {unlimited}
federation_rr_transactions_per_room_per_second: 10000
# Dehydrated devices (MSC3814), for test_synapse_dehydrated_devices.py to compare against;
# thread subscriptions (MSC4306 and MSC4308's sliding sync extension), for
# test_sliding_sync_vs_synapse.py.
experimental_features:
  msc3814_enabled: true
  msc4306_enabled: true
"""

_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "{workdir}/homeserver.log"
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"""


@dataclass
class SynapseServer:
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    admin_token: str = ""

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "homeserver.log"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=False, timeout=30)

    @classmethod
    def start(cls, workdir: Path, extra_config: str = "") -> SynapseServer:
        """`extra_config`: YAML appended to the shared test config (keys it does not set)."""
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        certs = write_self_signed_cert(workdir / "tls")
        if certs is None:
            raise RuntimeError("cannot make a TLS certificate: no openssl and no cryptography")
        cert, key = certs
        server_name = f"127.0.0.1:{port}"
        (workdir / "log.yaml").write_text(_LOG_CONFIG.format(workdir=workdir))
        (workdir / "homeserver.yaml").write_text(
            _CONFIG.format(
                server_name=server_name, workdir=workdir, port=port, cert=cert, key=key,
                secret=SHARED_SECRET, unlimited=_UNLIMITED,
            ) + extra_config
        )
        subprocess.run(
            [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "-c", str(workdir / "homeserver.yaml"),
             "--generate-keys"],
            check=True, capture_output=True, cwd=workdir,
        )
        stderr = open(workdir / "stderr.log", "wb")
        process = subprocess.Popen(
            [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "-c", str(workdir / "homeserver.yaml")],
            cwd=workdir, stdout=stderr, stderr=subprocess.STDOUT,
        )
        stderr.close()  # the child has its own copy
        server = cls(workdir, port, process)
        server._wait_ready()
        return server

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with self.http() as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Synapse exited with {self.process.returncode}; see {self.workdir}")
                try:
                    if http.get("/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Synapse did not start within {START_TIMEOUT_S}s; see {self.workdir}")

    def register(self, localpart: str, password: str = "password", *, admin: bool = False) -> dict:
        """Create a user with the shared-secret registration API; returns the login answer."""
        with self.http() as http:
            nonce = http.get("/_synapse/admin/v1/register").json()["nonce"]
            msg = b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                b"admin" if admin else b"notadmin"])
            mac = hmac.new(SHARED_SECRET.encode(), msg, hashlib.sha1).hexdigest()
            resp = http.post("/_synapse/admin/v1/register", json={
                "nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac,
            })
            resp.raise_for_status()
            return dict(resp.json())

    def admin(self) -> str:
        if not self.admin_token:
            self.admin_token = self.register("interop_admin", admin=True)["access_token"]
        return self.admin_token

    def reset_connection(self, destination: str) -> int:
        """Clear Synapse's backoff for `destination` (it survives restarts otherwise); the
        HTTP status (404 when Synapse never talked to the destination)."""
        with self.http() as http:
            resp = http.post(
                f"/_synapse/admin/v1/federation/destinations/{destination}/reset_connection",
                headers={"Authorization": f"Bearer {self.admin()}"}, json={},
            )
            return resp.status_code

    def destination(self, destination: str) -> dict | None:
        """Synapse's view of a destination (retry_last_ts, retry_interval, failure_ts, ...)."""
        with self.http() as http:
            resp = http.get(
                f"/_synapse/admin/v1/federation/destinations/{destination}",
                headers={"Authorization": f"Bearer {self.admin()}"},
            )
            return dict(resp.json()) if resp.status_code == 200 else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tls_overrides(directory: Path) -> dict[str, object] | None:
    """Config overrides for one of OUR servers reachable by peers on loopback over TLS:
    server_name "127.0.0.1:<federation port>", a self-signed certificate, and federation TLS
    verification off (peers' certificates are self-signed too). None if no certificate can be
    made."""
    certs = write_self_signed_cert(directory)
    if certs is None:
        return None
    port = free_port()
    return {
        "server.server_name": f"127.0.0.1:{port}",
        "listen.federation": f"127.0.0.1:{port}",
        "tls.mode": "files",
        "tls.cert_path": certs[0],
        "tls.key_path": certs[1],
        "federation.verify_tls": False,
        "federation.trusted_key_servers": (),
    }
