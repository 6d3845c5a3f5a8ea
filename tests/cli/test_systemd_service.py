"""Running as a systemd service: the unit `install-service` writes passes `systemd-analyze verify`
with no output and scores "OK" or better in `systemd-analyze security`, and `dendrite-lite run`
speaks sd_notify (READY once it serves, STATUS lines, WATCHDOG keep-alives, STOPPING) and writes
its log with journald priorities."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dendrite_lite.systemd_unit import UnitSettings, render_unit
from tests.peers import find_program, peer_missing

REPO = Path(__file__).resolve().parents[2]
DENDRITE_LITE = str(Path(sys.executable).parent / "dendrite-lite")


def _systemd_analyze() -> str:
    program = find_program("systemd-analyze")
    if program is None:
        peer_missing("systemd-analyze (Debian package systemd) is not installed")
    return program


def _install_service(config: Path, unit: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DENDRITE_LITE, "install-service", "--config", str(config), "-o", str(unit), *extra],
        check=False, capture_output=True, text=True, timeout=60,
    )


def test_the_reference_unit_is_what_install_service_writes() -> None:
    default = UnitSettings(
        exec_start=("/usr/local/bin/dendrite-lite",),
        config_path=Path("/var/lib/dendrite-lite/dendrite-lite.toml"),
        data_dir=Path("/var/lib/dendrite-lite/data"),
    )
    assert (REPO / "systemd" / "dendrite-lite.service").read_text() == render_unit(default)


@pytest.mark.parametrize(
    ("data_dir", "listen", "expect"),
    [
        # A data directory under /var/lib: a dynamic user owning the state directory.
        ("/var/lib/dendrite-lite/data", "0.0.0.0:443", ["DynamicUser=yes", "StateDirectory=dendrite-lite", "AmbientCapabilities=CAP_NET_BIND_SERVICE"]),
        # Elsewhere: the account owning it, that directory writable; no capability for 8008.
        ("./data", "127.0.0.1:8008", ["User=root", "ReadWritePaths={home}/data", "CapabilityBoundingSet="]),
    ],
)
def test_install_service_writes_a_unit_systemd_accepts(
    tmp_path: Path, data_dir: str, listen: str, expect: list[str]
) -> None:
    analyze = _systemd_analyze()
    home = tmp_path / "srv"
    home.mkdir()
    (home / "data").mkdir()
    config = home / "dendrite-lite.toml"
    config.write_text(
        f'[server]\nserver_name = "family.example"\ndata_dir = "{data_dir}"\n'
        f'[listen]\nclient = "{listen}"\nfederation = "127.0.0.1:8448"\n'
    )
    unit = tmp_path / "dendrite-lite.service"
    result = _install_service(config, unit)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"wrote {unit}: runs `{DENDRITE_LITE} run`")
    assert "  sudo systemctl enable --now dendrite-lite" in result.stdout
    text = unit.read_text()
    for line in expect:
        assert line.format(home=home) in text.splitlines(), text
    assert f"ExecStart={DENDRITE_LITE} run --config {config}" in text
    assert "Type=notify" in text and "WatchdogSec=60s" in text
    if "8008" in listen:
        assert "AmbientCapabilities" not in text

    verify = subprocess.run([analyze, "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60)
    # verify exits 0 on warnings too: any output at all is a failure.
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)], check=False, capture_output=True, text=True, timeout=60
    )
    level = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", security.stdout)
    assert level is not None, security.stdout + security.stderr
    assert level[2] in ("OK", "SAFE"), security.stdout
    assert float(level[1]) <= 2.5


def _notifications(sock: socket.socket, until: float) -> list[str]:
    messages = []
    sock.settimeout(0.2)
    while time.monotonic() < until:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if "STOPPING=1" in messages[-1]:
            break
    return messages


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_tells_systemd_when_it_is_ready_alive_and_stopping(tmp_path: Path) -> None:
    config = tmp_path / "dendrite-lite.toml"
    config.write_text(
        '[server]\nserver_name = "notify.example"\ndata_dir = "./data"\n'
        f'[listen]\nclient = "127.0.0.1:{_free_port()}"\nfederation = "127.0.0.1:{_free_port()}"\n'
    )
    assert subprocess.run([DENDRITE_LITE, "generate-keys", "--config", str(config)], check=False, capture_output=True, timeout=60).returncode == 0
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    read_end, write_end = os.pipe()
    st = os.fstat(write_end)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": "200000",  # a keep-alive every 0.1 s
        "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",  # stderr is "the journal"
    }
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [DENDRITE_LITE, "run", "--config", str(config)], env=env, stderr=write_end, stdout=subprocess.DEVNULL
    )
    os.close(write_end)
    try:
        messages: list[str] = []
        deadline = time.monotonic() + 60
        while not any("READY=1" in m for m in messages) and time.monotonic() < deadline:
            messages += _notifications(notify, time.monotonic() + 0.5)
        assert messages[0] == "STATUS=starting: opening the database"
        ready = next(m for m in messages if "READY=1" in m)
        status = dict(line.split("=", 1) for line in ready.splitlines())["STATUS"]
        url = re.search(r"client (http://127\.0\.0\.1:\d+)", status)
        assert status.startswith("serving notify.example: client http://127.0.0.1:") and url
        # READY means it serves: the very next request is answered.
        assert httpx.get(f"{url[1]}/_matrix/client/versions", timeout=10).status_code == 200
        later = _notifications(notify, time.monotonic() + 0.6)
        assert later.count("WATCHDOG=1") >= 3, later
        proc.send_signal(signal.SIGTERM)
        rest = _notifications(notify, time.monotonic() + 30)
        assert rest[-1] == "STOPPING=1\nSTATUS=stopping", rest
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    with os.fdopen(read_end, "r") as err:
        log = err.read().splitlines()
    # journald files each line under its priority: <6> info, <4> warning, <3> error.
    assert any(re.fullmatch(r"<6>INFO dendrite_lite\.server: client listener on http://127\.0\.0\.1:\d+", line) for line in log), log
    assert all(re.match(r"<[2-7]>", line) for line in log), log
