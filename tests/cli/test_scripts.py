"""scripts/matrix-spec.sh: where the spec-driven tests find the Matrix spec, on a machine with
the offline copy beside the repository, with MATRIX_SPEC_DIR, by a pinned clone, or not at all."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "matrix-spec.sh"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _fake_spec(path: Path) -> Path:
    (path / "data" / "api" / "client-server").mkdir(parents=True)
    return path


def _run(tmp: Path, env: dict[str, str], *, with_shared: bool = False) -> subprocess.CompletedProcess[str]:
    """The script from a repository at tmp/work/repo, as a lone clone or beside ../shared."""
    repo = tmp / "work" / "repo"
    (repo / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, repo / "scripts" / "matrix-spec.sh")
    if with_shared:
        _fake_spec(tmp / "work" / "shared" / "matrix-spec")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_SPEC")}
    clean["XDG_CACHE_HOME"] = str(tmp / "cache")
    return subprocess.run(["bash", str(repo / "scripts" / "matrix-spec.sh")], capture_output=True,
                          text=True, env={**clean, **env}, timeout=60)


def _local_spec_repo(tmp: Path) -> tuple[Path, str]:
    """A git repository shaped like matrix-spec, and its commit."""
    src = _fake_spec(tmp / "upstream")
    (src / "data" / "api" / "client-server" / "sync.yaml").write_text("openapi: 3.1.0\n")
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "spec"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    subprocess.run([*git, "config", "uploadpack.allowReachableSHA1InWant", "true"], check=True)
    return src, commit


def test_the_copy_beside_the_repository_comes_first(tmp_path: Path) -> None:
    other = _fake_spec(tmp_path / "elsewhere")
    run = _run(tmp_path, {"MATRIX_SPEC_DIR": str(other)}, with_shared=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "work" / "shared" / "matrix-spec")


def test_matrix_spec_dir_is_used_and_checked(tmp_path: Path) -> None:
    spec = _fake_spec(tmp_path / "spec")
    run = _run(tmp_path, {"MATRIX_SPEC_DIR": str(spec)})
    assert run.returncode == 0 and run.stdout.strip() == str(spec)
    run = _run(tmp_path, {"MATRIX_SPEC_DIR": str(tmp_path / "empty")})
    assert run.returncode == 2
    assert "is not a checkout of matrix-org/matrix-spec" in run.stderr


def test_a_pinned_shallow_clone_is_made_once_and_cached(tmp_path: Path) -> None:
    src, commit = _local_spec_repo(tmp_path)
    env = {"MATRIX_SPEC_REPO": f"file://{src}", "MATRIX_SPEC_COMMIT": commit}
    run = _run(tmp_path, env)
    assert run.returncode == 0, run.stderr
    cached = Path(run.stdout.strip())
    assert cached == tmp_path / "cache" / "dendrite-lite" / f"matrix-spec-{commit}"
    assert (cached / "data" / "api" / "client-server" / "sync.yaml").is_file()
    assert "fetching the Matrix spec" in run.stderr
    shutil.rmtree(src)  # the cache is used from now on: no network needed
    again = _run(tmp_path, env)
    assert again.returncode == 0 and again.stdout.strip() == str(cached)
    assert "fetching" not in again.stderr


def test_no_spec_and_no_network_is_a_clear_failure(tmp_path: Path) -> None:
    run = _run(tmp_path, {"MATRIX_SPEC_REPO": f"file://{tmp_path}/no-such-repo"})
    assert run.returncode == 2
    assert run.stdout == ""
    assert "the tests need the Matrix spec sources and none were found" in run.stderr
    assert "MATRIX_SPEC_DIR=/path/to/matrix-spec bash scripts/test.sh" in run.stderr
    assert not any((tmp_path / "cache" / "dendrite-lite").glob("matrix-spec-*"))


def test_test_sh_uses_it() -> None:
    text = (SCRIPT.parent / "test.sh").read_text()
    assert "MATRIX_SPEC_DIR=$(bash scripts/matrix-spec.sh)" in text
    assert "export MATRIX_SPEC_DIR" in text


RUN_SH = SCRIPT.parent / "run.sh"


def _fake_checkout(tmp: Path) -> Path:
    """run.sh in a checkout whose .venv holds fakes that log their arguments."""
    repo = tmp / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(RUN_SH, repo / "scripts" / "run.sh")
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n')
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in {
        "python": 'echo "python $*" >> "$LOG"',
        "dendrite-lite": 'echo "dendrite-lite $*" >> "$LOG"\n'
                         '[ "$1" = init ] && { touch dendrite-lite.toml; echo "Next steps: run"; }\n'
                         "exit 0",
    }.items():
        exe = bin_dir / name
        exe.write_text(f"#!/usr/bin/env bash\n{body}\n")
        exe.chmod(0o755)
    return repo


def _start(repo: Path, log: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DENDRITE_LITE_CONFIG"}
    return subprocess.run(["bash", "scripts/run.sh"], cwd=repo, capture_output=True, text=True,
                          env={**env, "LOG": str(log)}, timeout=60)


def test_run_sh_installs_only_when_needed_and_says_what_it_starts(tmp_path: Path) -> None:
    repo = _fake_checkout(tmp_path)
    log = tmp_path / "calls.log"
    first = _start(repo, log)
    assert first.returncode == 0, first.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "python -m pip install -q -e ."
    assert calls[1].startswith("dendrite-lite init --non-interactive")
    assert calls[2] == "dendrite-lite run --config dendrite-lite.toml"
    # What the first start really is, instead of the wizard's "Next steps: ... run".
    assert "Next steps" not in first.stderr + first.stdout
    for fact in ("server name   localhost", "registration  open", "http://127.0.0.1:8008",
                 "dendrite-lite init"):
        assert fact in first.stderr

    log.unlink()
    second = _start(repo, log)
    assert second.returncode == 0, second.stderr
    assert log.read_text().splitlines() == ["dendrite-lite run --config dendrite-lite.toml"]
    assert "First start" not in second.stderr

    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    log.unlink()
    assert _start(repo, log).returncode == 0
    assert log.read_text().splitlines()[0] == "python -m pip install -q -e ."  # changed: reinstall
