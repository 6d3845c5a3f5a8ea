"""The `dendrite-lite` command: init, config check, run, generate-keys, version; a real start."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from signedjson.key import read_signing_keys
from typer.testing import CliRunner

import dendrite_lite
from dendrite_lite.cli.main import app
from dendrite_lite.spec_versions import SUPPORTED_VERSIONS

REPO_ROOT = Path(dendrite_lite.__file__).resolve().parent.parent

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
    # DENDRITE_LITE_CONFIG from the developer's shell must not leak into tests.
    return runner.invoke(app, list(args), env={"DENDRITE_LITE_CONFIG": None, **(env or {})},
                         input=input)


def init_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "init", "--non-interactive",
        "--config", str(tmp_path / "dendrite-lite.toml"),
        "--server-name", "example.org",
        "--data-dir", str(tmp_path / "data"),
        *extra,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("DENDRITE_LITE_CONFIG", None)
    return env


def test_config_check_reports_a_tls_listener_without_a_certificate(tmp_path: Path) -> None:
    path = tmp_path / "dendrite-lite.toml"
    path.write_text('[listen]\nfederation_tls = true\n')
    result = invoke("config", "check", "--config", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        'error: listen.federation_tls: true needs a certificate, but tls.mode = "proxy" has none'
        ' (a reverse proxy does HTTPS): set tls.mode = "files" or "acme", or'
        " listen.federation_tls = false"
    )


# --- config path, errors ---------------------------------------------------------------------


def test_run_without_a_config_explains_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("run")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no config file at dendrite-lite.toml\n")
    assert "dendrite-lite init" in result.stderr
    assert "Traceback" not in result.output


def test_config_path_from_env_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "env.toml").write_text('[server]\nserver_name = "env.example"\n')
    (tmp_path / "flag.toml").write_text('[server]\nserver_name = "flag.example"\n')
    (tmp_path / "dendrite-lite.toml").write_text('[server]\nserver_name = "cwd.example"\n')
    env = {"DENDRITE_LITE_CONFIG": str(tmp_path / "env.toml")}
    assert "server name:  cwd.example" in invoke("config", "check").stdout
    assert "server name:  env.example" in invoke("config", "check", env=env).stdout
    flagged = invoke("config", "check", "--config", "flag.toml", env=env)
    assert "server name:  flag.example" in flagged.stdout


@pytest.mark.parametrize("command", [["run"], ["config", "check"], ["generate-keys"]])
def test_config_errors_are_one_clean_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "dendrite-lite.toml"
    path.write_text('[listen]\nclient = "0.0.0.0:80800"\n')
    result = invoke(*command, "--config", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        'error: listen.client: "0.0.0.0:80800" is not a valid port (1-65535)\n'
        f"(in {path})\n"
    )
    assert result.stdout == ""

    path.write_text("[listen\n")
    result = invoke(*command, "--config", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}, line 1, column 8: invalid TOML")
    assert "Traceback" not in result.stderr


def test_config_check_rejects_a_broken_key_file(tmp_path: Path) -> None:
    assert invoke(*init_args(tmp_path)).exit_code == 0
    (tmp_path / "data" / "signing.key").write_text("not a key\n")
    result = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert result.exit_code == 2
    assert "is not a valid key file" in result.stderr
    (tmp_path / "data" / "signing.key").unlink()
    result = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert result.exit_code == 0
    assert "signing key:  missing:" in result.stdout


def test_config_check_names_missing_tls_files(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    assert invoke(*init_args(tmp_path, "--tls-mode", "files", "--tls-cert",
                             str(tmp_path / "cert.pem"), "--tls-key",
                             str(tmp_path / "key.pem"))).exit_code == 0
    (tmp_path / "key.pem").unlink()  # init refuses a missing file; it went missing later
    result = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert result.exit_code == 2
    key_path = tmp_path.resolve() / "key.pem"
    assert result.stderr == f"error: tls.key_path: {key_path} does not exist\n"
    (tmp_path / "key.pem").write_text("x")
    result = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert result.exit_code == 0, result.output
    assert "  TLS:          files" in result.stdout


# --- generate-keys, version ------------------------------------------------------------------


def test_generate_keys(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "k.key"
    result = invoke("generate-keys", "--output", str(out))
    assert result.exit_code == 0, result.output
    with open(out) as f:
        [key] = read_signing_keys(f)
    assert f"Wrote signing key ed25519:{key.version} to {out}" in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    again = invoke("generate-keys", "--output", str(out))
    assert again.exit_code == 2
    assert f"error: signing key file {out} already exists" in again.stderr
    forced = invoke("generate-keys", "--output", str(out), "--force")
    assert forced.exit_code == 0
    with open(out) as f:
        assert read_signing_keys(f)[0].version != key.version

    # Without --output the key goes where the config says.
    config = tmp_path / "c.toml"
    config.write_text('[server]\nsigning_key_path = "my.key"\n')
    assert invoke("generate-keys", "--config", str(config)).exit_code == 0
    assert (tmp_path / "my.key").exists()


def test_version() -> None:
    result = invoke("version")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"dendrite-lite {dendrite_lite.__version__} (Python ")
    assert lines[1] == "Matrix client-server API versions: " + ", ".join(SUPPORTED_VERSIONS)
    assert lines[2] == (
        "Room versions: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"
        " (new rooms use 12 unless server.default_room_version says otherwise)"
    )


def test_every_command_has_help() -> None:
    top = invoke("--help")
    assert top.exit_code == 0
    for name in (
        "init", "run", "config", "generate-keys", "create-account", "registration-token", "version"
    ):
        assert name in top.stdout
    for command in (["init"], ["run"], ["config", "check"], ["generate-keys"], ["version"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0
        assert "Usage: dendrite-lite" in result.stdout


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    # Duck-typed: typer ships its own copy of click, whose Group is not click.Group.
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


# Text in <angle> or [square] brackets: what markdown (an HTML tag) or rich markup (a style tag)
# would take for markup and drop. A backslash escape in the source is markdown's, not the text's.
_BRACKETED = re.compile(r"<[^<>\n]+>|\[[^\[\]\n]+\]")


def test_help_shows_bracketed_text_as_written() -> None:
    # `init --help` once showed "Default: https:///." for "https://<server-name>/." (issue 11).
    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        # Undo rich's box and line wrapping so text split over two lines still matches.
        shown = " ".join(re.sub(r"[\u2500-\u257f]", " ", result.stdout).split())
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            for written in _BRACKETED.findall(re.sub(r"\\(.)", r"\1", text)):
                assert " ".join(written.split()) in shown, (path, written, result.stdout)
                checked += 1
    assert checked >= 1  # at least init's <server-name>: the test must be able to fail


# --- as a real process -----------------------------------------------------------------------


def test_module_entry_point_version_and_missing_config(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "dendrite_lite", "version"],
        capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=60,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"dendrite-lite {dendrite_lite.__version__} ")

    run = subprocess.run(
        [sys.executable, "-m", "dendrite_lite", "run"],
        capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: no config file at dendrite-lite.toml")
    assert "dendrite-lite init" in run.stderr


def test_init_then_run_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    client_port, federation_port = free_port(), free_port()
    config = tmp_path / "dendrite-lite.toml"
    result = invoke(*init_args(tmp_path, "--listen-client", f"127.0.0.1:{client_port}",
                               "--listen-federation", f"127.0.0.1:{federation_port}",
                               "--registration", "open"))
    assert result.exit_code == 0, result.output

    with _running(config, tmp_path) as proc:
        base = f"http://127.0.0.1:{client_port}"
        health = _poll(base + "/health", proc)
        versions = httpx.get(base + "/_matrix/client/versions", timeout=5)
        assert health.status_code == 200
        assert versions.status_code == 200
        assert versions.json()["versions"] == list(SUPPORTED_VERSIONS)
        # `run` execs the lean server image (same PID, no CLI framework loaded in it).
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"dendrite_lite.server_process" in cmdline
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "pydantic_core" not in maps
        assert "uvloop" in maps  # server.event_loop's default
        # A path that would forge a log line if written verbatim (issue 11: log injection).
        forged = httpx.get(base + "/_matrix/x%0AWARNING%20dendrite_lite.server:%20forged%E2%80%A8",
                           timeout=5)
        assert forged.status_code == 404
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in stderr
    assert not any(line.startswith("WARNING dendrite_lite.server: forged") for line in stderr.splitlines())
    assert "GET /_matrix/x\\nWARNING dendrite_lite.server: forged\\u2028 404" in stderr


def test_run_on_asyncio_when_configured(tmp_path: Path) -> None:
    client_port = free_port()
    config = tmp_path / "dendrite-lite.toml"
    result = invoke(*init_args(tmp_path, "--listen-client", f"127.0.0.1:{client_port}",
                               "--listen-federation", ""))
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert 'event_loop = "uvloop"' in text
    config.write_text(text.replace('event_loop = "uvloop"', 'event_loop = "asyncio"'))
    with _running(config, tmp_path) as proc:
        base = f"http://127.0.0.1:{client_port}"
        _poll(base + "/health", proc)
        assert httpx.get(base + "/_matrix/client/versions", timeout=5).status_code == 200
        assert "uvloop" not in Path(f"/proc/{proc.pid}/maps").read_text()


@contextlib.contextmanager
def _running(config: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dendrite-lite run` as a process; it must stop cleanly on SIGTERM at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dendrite_lite", "run", "--config", str(config)],
        env=subprocess_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _poll(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"server exited with {proc.returncode}: {err}")
        try:
            response = httpx.get(url, timeout=1)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer 200 within {timeout} s")
