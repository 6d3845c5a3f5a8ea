"""scripts/sytest-launch.py, SyTest's way of starting dendrite-lite: the config it writes passes
`config check` and turns on what SyTest tests (URL previews of its own loopback HTTPS server,
trusted through SSL_CERT_FILE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parents[2] / "scripts" / "sytest-launch.py"
REAL = Path(sys.executable).parent / "dendrite-lite"


def _fake_exe(tmp: Path) -> Path:
    """The real dendrite-lite for `init` and `config check`; `run` records what it was given."""
    exe = tmp / "dendrite-lite"
    exe.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = run ]; then\n'
        f'  printf "%s" "$SSL_CERT_FILE" > {tmp}/ssl_cert_file; cp "$3" {tmp}/run.toml; exit 0\n'
        "fi\n"
        f'exec {REAL} "$@"\n'
    )
    exe.chmod(0o755)
    return exe


def _launch(tmp_path: Path, **more: object) -> tuple[dict, dict]:
    """Run the launcher on a sytest-hs.json (plus `more`): that file, and the config `run` got."""
    hs_dir, data = tmp_path / "hs", tmp_path / "hs" / "data"
    data.mkdir(parents=True)
    (tmp_path / "ca.crt").write_text("")
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_text("")
    config = {
        "hs_dir": str(hs_dir), "data_dir": str(data), "bind_host": "127.0.0.1",
        "secure_port": 18999, "unsecure_port": 18998, "log_file": str(tmp_path / "log"),
        "server_name": "127.0.0.1:18999", "tls_cert": str(tmp_path / "tls.crt"),
        "tls_key": str(tmp_path / "tls.key"), "registration_shared_secret": "s",
        "ca_cert": str(tmp_path / "ca.crt"), **more,
    }
    (tmp_path / "hs.json").write_text(json.dumps(config))
    env = {**os.environ, "SYTEST_HS_CONFIG": str(tmp_path / "hs.json"),
           "DENDRITE_LITE": str(_fake_exe(tmp_path)), "DL_PLAIN_HTTP": "0"}
    done = subprocess.run([sys.executable, str(LAUNCHER)], cwd=hs_dir, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (tmp_path / "log").read_text()
    return config, tomllib.loads((tmp_path / "run.toml").read_text())


def test_launcher_enables_url_previews_of_sytests_test_server(tmp_path: Path) -> None:
    config, written = _launch(tmp_path)
    assert written["media"]["url_preview_enabled"] is True
    assert written["media"]["url_preview_ip_allowlist"] == ["127.0.0.1/32"]
    assert (tmp_path / "ssl_cert_file").read_text() == config["ca_cert"]


def test_launcher_sends_mail_to_sytests_smtp_server(tmp_path: Path) -> None:
    _, written = _launch(tmp_path, smtp_host="127.0.0.1", smtp_port=18997)
    assert {k: written["email"][k] for k in ("smtp_host", "smtp_port", "smtp_tls")} == {
        "smtp_host": "127.0.0.1", "smtp_port": 18997, "smtp_tls": "none",
    }


def test_launcher_without_a_mail_server_leaves_email_off(tmp_path: Path) -> None:
    _, written = _launch(tmp_path)
    assert written["email"]["smtp_host"] == ""


def test_launcher_reaches_sytests_identity_server(tmp_path: Path) -> None:
    """SyTest's identity server: HTTPS on loopback, with a self-signed certificate no CA signed."""
    _, written = _launch(tmp_path)
    assert written["identity_server"]["verify_tls"] is False
    assert written["identity_server"]["ip_allowlist"] == ["127.0.0.1/32"]
