"""The shipped artifacts, built by packaging/build.sh once per test session and run as a
self-hoster would: the zipapp (shiv, on this machine's Python) and the one-file binary
(PyInstaller). Each one sets up a server with `init --non-interactive`, serves, answers
/versions, registers a user who sends a message, and stops on SIGTERM; each migrates an older
database forward (a line per migration) and refuses a newer one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.unit.storage.migration_helpers import up_to

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = {"zipapp": "dendrite-lite.pyz", "binary": "dendrite-lite"}


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        ["bash", str(REPO / "packaging" / "build.sh"), str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {"dendrite-lite.pyz", "dendrite-lite"} <= names
    assert any(n.endswith("-py3-none-any.whl") for n in names) and any(n.endswith(".tar.gz") for n in names)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path) -> dict[str, str]:
    # shiv unpacks into SHIV_ROOT: a fresh one per test proves the zipapp needs nothing cached.
    return {**os.environ, "SHIV_ROOT": str(home / "shiv"), "HOME": str(home)}


def _init(program: Path, home: Path) -> str:
    port = _free_port()
    result = subprocess.run(
        [str(program), "init", "--non-interactive", "--server-name", "localhost",
         "--registration", "open", "--listen-client", f"127.0.0.1:{port}",
         "--listen-federation", f"127.0.0.1:{_free_port()}"],
        cwd=home, env=_env(home), capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (home / "dendrite-lite.toml").is_file() and (home / "data" / "signing.key").is_file()
    return f"http://127.0.0.1:{port}"


class _Serving:
    def __init__(self, program: Path, home: Path) -> None:
        self.log = home / "run.log"
        self.proc = subprocess.Popen(
            [str(program), "run"], cwd=home, env=_env(home),
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
        )

    def wait_until_serving(self, url: str) -> float:
        started = time.monotonic()
        while time.monotonic() - started < 120:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{url}/_matrix/client/versions", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("not serving after 120 s:\n" + self.log.read_text())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=sorted(ARTIFACTS))
def program(request: pytest.FixtureRequest, dist: Path) -> Path:
    return dist / ARTIFACTS[request.param]


def _chat(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        body = {"username": "alice", "password": "correct horse battery staple"}
        session = c.post("/_matrix/client/v3/register", json=body).json()["session"]
        reg = c.post(
            "/_matrix/client/v3/register",
            json={**body, "auth": {"type": "m.login.dummy", "session": session}},
        )
        assert reg.status_code == 200, reg.text
        headers = {"Authorization": f"Bearer {reg.json()['access_token']}"}
        room = c.post("/_matrix/client/v3/createRoom", json={"name": "bundle"}, headers=headers)
        room_id = room.json()["room_id"]
        sent = c.put(
            f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
            json={"msgtype": "m.text", "body": "hello from the bundle"}, headers=headers,
        )
        assert sent.status_code == 200, sent.text
        messages = c.get(
            f"/_matrix/client/v3/rooms/{room_id}/messages", params={"dir": "b", "limit": 1},
            headers=headers,
        ).json()
        assert messages["chunk"][0]["event_id"] == sent.json()["event_id"]
        assert messages["chunk"][0]["content"]["body"] == "hello from the bundle"


def test_a_bundle_sets_up_serves_and_stops(program: Path, tmp_path: Path) -> None:
    home = tmp_path
    url = _init(program, home)
    server = _Serving(program, home)
    try:
        first_answer_s = server.wait_until_serving(url)
        _chat(url)
        assert server.stop() == 0
    finally:
        server.kill()
    assert server.log.read_text().splitlines()[-1].endswith("dendrite_lite.server: stopped")
    print(f"{program.name}: {program.stat().st_size / 1e6:.1f} MB, first answer after {first_answer_s:.2f} s")


def test_a_bundle_upgrades_an_older_database_and_refuses_a_newer_one(program: Path, tmp_path: Path) -> None:
    home = tmp_path
    url = _init(program, home)
    db = home / "data" / "homeserver.db"
    for stale in home.glob("data/homeserver.db*"):
        stale.unlink()
    # A database as an earlier dendrite-lite left it: migrations up to 0020 only.
    older = asyncio.run(up_to(home / "older", "0020_media.sql"))
    older.rename(db)
    server = _Serving(program, home)
    try:
        server.wait_until_serving(url)
        assert server.stop() == 0
    finally:
        server.kill()
    log = server.log.read_text()
    assert f"database {db}: upgrading schema 19 to " in log
    assert "migration 1/" in log and "0020_media.sql applied in " in log

    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (9999, 'from_the_future', 1)")
    conn.commit()
    conn.close()
    refused = subprocess.run(
        [str(program), "run"], cwd=home, env=_env(home), capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert refused.returncode == 1
    assert "is at schema version 9999, but this dendrite-lite only knows versions up to" in refused.stderr
