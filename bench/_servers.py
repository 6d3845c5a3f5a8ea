"""Start dendrite-lite and Synapse as subprocesses for the benchmarks, and watch their memory/CPU.

Both servers get the same setup so the numbers compare like with like:
- plain HTTP on 127.0.0.1 (a free port), no TLS (ours: tls.mode = "proxy"), no federation listener;
- SQLite in WAL mode with each server's default `synchronous` (FULL on both: Synapse leaves
  SQLite's compiled-in default, which is FULL; ours defaults to FULL);
- open registration with the m.login.dummy stage, every rate limit off (ours) or raised to
  effectively unlimited (Synapse has no single switch);
- presence ON for both (ours has no switch to turn it off; Synapse's default is on);
- log level INFO for both (each server's default), written to a file in the work directory;
- server_name "bench.localhost" for both, so event IDs, user IDs and JSON sizes match.

`ProcessWatch` samples VmRSS of the server process (and any children) and its CPU time every
50 ms in a thread, so a busy event loop in the benchmark does not skew the sampling.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "REPO",
    "SERVER_NAME",
    "SYNAPSE_PYTHON",
    "ServerProcess",
    "ProcessWatch",
    "start_dendrite",
    "start_synapse",
    "free_port",
]

REPO = Path(__file__).resolve().parents[1]
OUR_PYTHON = REPO / ".venv" / "bin" / "python"
SYNAPSE_PYTHON = REPO / ".venv-synapse" / "bin" / "python"
SERVER_NAME = "bench.localhost"
START_TIMEOUT_S = 120.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    workdir: Path
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    verify: bool = True  # False: a self-signed certificate (federation benchmarks on loopback)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> float:
        """Poll /health until it answers 200; returns the seconds it took."""
        start = time.monotonic()
        deadline = start + START_TIMEOUT_S
        with httpx.Client(base_url=self.base_url, timeout=5, verify=self.verify) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode}; see {self.log_path}"
                    )
                try:
                    if http.get("/health").status_code == 200:
                        return time.monotonic() - start
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {START_TIMEOUT_S}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(
    name: str, argv: list[str], workdir: Path, base_url: str, env: dict[str, str] | None = None
) -> ServerProcess:
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    return ServerProcess(name, workdir, base_url, process, log_path)


def our_config(workdir: Path, port: int, overrides: Sequence[str] = ()) -> str:
    """Our TOML config; `overrides` are "section.key=<TOML value>" (e.g. for experiments:
    'database.synchronous="NORMAL"'), replacing or adding keys."""
    sections: dict[str, dict[str, str]] = {
        "server": {"server_name": f'"{SERVER_NAME}"', "data_dir": f'"{workdir}/data"'},
        "listen": {"client": f'"127.0.0.1:{port}"', "federation": '""'},
        "tls": {"mode": '"proxy"'},
        "registration": {"mode": '"open"'},
        "federation": {"enabled": "false"},
        "logging": {"level": '"info"'},
        "ratelimit": {"enabled": "false"},
    }
    for item in overrides:
        dotted, sep, value = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not (sep and dot and key):
            raise ValueError(f"override {item!r} is not section.key=value")
        sections.setdefault(section, {})[key] = value.strip()
    return "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for name, keys in sections.items()
    )


def start_dendrite(
    workdir: Path, overrides: Sequence[str] = (), *, tls: tuple[Path, Path] | None = None
) -> ServerProcess:
    """`python -m dendrite_lite run --config ...` from .venv with a generated config.

    `tls` (certificate, key): serve HTTPS with them (tls.mode = "files"); the ServerProcess
    then accepts that certificate without verifying it."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    port = free_port()
    config = workdir / "dendrite-lite.toml"
    if tls is not None:
        overrides = ['tls.mode="files"', f'tls.cert_path="{tls[0]}"', f'tls.key_path="{tls[1]}"',
                     *overrides]
    config.write_text(our_config(workdir, port, overrides))
    python = str(OUR_PYTHON if OUR_PYTHON.exists() else sys.executable)
    # The checkout need not be pip-installed into the venv: import the package from REPO.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )}
    subprocess.run(
        [python, "-m", "dendrite_lite", "generate-keys", "--config", str(config)],
        check=True, capture_output=True, env=env,
    )
    server = _spawn(
        "dendrite-lite", [python, "-m", "dendrite_lite", "run", "--config", str(config)],
        workdir, f"{'https' if tls else 'http'}://127.0.0.1:{port}", env,
    )
    server.verify = tls is None
    return server


# Doubled braces: the config text goes through str.format once more.
_UNLIMITED = "{{per_second: 100000, burst_count: 1000000}}"

_SYNAPSE_CONFIG = f"""\
server_name: "{{server_name}}"
pid_file: "{{workdir}}/homeserver.pid"
public_baseurl: "http://127.0.0.1:{{port}}/"
report_stats: false
listeners:
  - port: {{port}}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{{workdir}}/homeserver.db"
log_config: "{{workdir}}/log.yaml"
media_store_path: "{{workdir}}/media"
signing_key_path: "{{workdir}}/signing.key"
enable_registration: true
enable_registration_without_verification: true
trusted_key_servers: []
suppress_key_server_warning: true
url_preview_enabled: false
enable_metrics: false
presence:
  enabled: true
rc_message: {_UNLIMITED}
rc_registration: {_UNLIMITED}
rc_registration_token_validity: {_UNLIMITED}
rc_login:
  address: {_UNLIMITED}
  account: {_UNLIMITED}
  failed_attempts: {_UNLIMITED}
rc_joins:
  local: {_UNLIMITED}
  remote: {_UNLIMITED}
rc_joins_per_room: {_UNLIMITED}
rc_invites:
  per_room: {_UNLIMITED}
  per_user: {_UNLIMITED}
  per_issuer: {_UNLIMITED}
rc_admin_redaction: {_UNLIMITED}
rc_3pid_validation: {_UNLIMITED}
rc_presence:
  per_user: {_UNLIMITED}
rc_delayed_event_mgmt: {_UNLIMITED}
rc_room_creation: {_UNLIMITED}
"""

_SYNAPSE_LOG_CONFIG = """\
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


def start_synapse(workdir: Path) -> ServerProcess:
    """`python -m synapse.app.homeserver` from .venv-synapse with a config written here."""
    if not SYNAPSE_PYTHON.exists():
        raise RuntimeError(f"Synapse is not installed at {SYNAPSE_PYTHON}")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "homeserver.yaml"
    (workdir / "log.yaml").write_text(_SYNAPSE_LOG_CONFIG.format(workdir=workdir))
    config.write_text(_SYNAPSE_CONFIG.format(server_name=SERVER_NAME, workdir=workdir, port=port))
    subprocess.run(
        [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"],
        check=True, capture_output=True, cwd=workdir,
    )
    return _spawn(
        "Synapse", [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "-c", str(config)],
        workdir, f"http://127.0.0.1:{port}",
    )


# --- Memory and CPU sampling -----------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class ProcessWatch:
    """Samples (monotonic time, RSS kB of pid + descendants) every `interval_s` in a thread."""

    pid: int
    interval_s: float = 0.05
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = sum(_rss_kb(p) for p in _descendants(self.pid))
            if rss:
                self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval_s)

    def rss_between(self, start: float, end: float) -> list[int]:
        return [kb for t, kb in self.samples if start <= t <= end]

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by pid and its descendants."""
        return sum(_cpu_s(p) for p in _descendants(self.pid))
