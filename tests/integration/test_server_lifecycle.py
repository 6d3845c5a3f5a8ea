"""Server lifecycle over real sockets: graceful shutdown, storage closed last, startup errors,
TLS files mode, SIGTERM on `run()`, and the one-line-per-request access log."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from quart import Blueprint, Quart, Response

from dendrite_lite.api.app import services
from dendrite_lite.crypto.keys import new_server_key, write_signing_key
from dendrite_lite.server import Listener, StartupError, serve
from dendrite_lite.storage import DatabaseClosed
from tests.conftest import RunningServer, StartServer, make_config

bp = Blueprint("test_lifecycle", __name__)
handler_started = asyncio.Event()


@bp.get("/_test/slow")
async def slow() -> Response:
    handler_started.set()
    await asyncio.sleep(0.5)

    async def touch(conn: object) -> None:
        await conn.execute("SELECT 1")  # type: ignore[attr-defined]

    # Still writing after the shutdown trigger: storage must not be closed under us.
    await services().storage.db.write(touch)
    return Response("done")


def add_routes(app: Quart, listener: Listener) -> None:
    app.register_blueprint(bp)


async def test_graceful_shutdown_finishes_in_flight_request(start_server: StartServer) -> None:
    srv = await start_server(configure_app=add_routes)
    handler_started.clear()
    in_flight = asyncio.create_task(srv.client.get("/_test/slow"))
    await asyncio.wait_for(handler_started.wait(), 5)

    srv.stop_event.set()
    resp = await asyncio.wait_for(in_flight, 5)
    assert resp.status_code == 200
    assert resp.text == "done"
    await asyncio.wait_for(srv.task, 5)

    storage = srv.app().extensions["dendrite_lite"].storage
    with pytest.raises(DatabaseClosed):
        await storage.db.read(lambda conn: conn.execute("SELECT 1"))
    async with httpx.AsyncClient(base_url=srv.listening.client_url) as fresh:
        with pytest.raises(httpx.ConnectError):
            await fresh.get("/health")


async def test_stop_is_quick_when_idle(start_server: StartServer) -> None:
    srv = await start_server()
    assert (await srv.client.get("/health")).status_code == 200
    loop = asyncio.get_running_loop()
    started = loop.time()
    await srv.stop()
    # An idle keep-alive connection must not hold shutdown for the graceful timeout.
    assert loop.time() - started < 1.0


async def test_missing_signing_key_is_a_clear_startup_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with pytest.raises(StartupError, match="generate-keys") as info:
        await serve(config, shutdown_trigger=asyncio.Event().wait)
    assert str(config.signing_key_path) in str(info.value)
    # Nothing was created: the key is checked before the database is opened.
    assert not config.database_path.exists()


async def test_port_in_use_is_a_startup_error(server: RunningServer, start_server: StartServer) -> None:
    host, port = server.listening.client
    with pytest.raises(StartupError, match="cannot listen"):
        await start_server({"listen.client": f"{host}:{port}"})


async def test_access_log_line(server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dendrite_lite.access"):
        resp = await server.client.get(
            "/_matrix/client/versions", params={"access_token": "syt_secret_token"}
        )
        await server.client.get("/_matrix/client/v3/nope")
    lines = [r.getMessage() for r in caplog.records if r.name == "dendrite_lite.access"]
    assert len(lines) == 2
    match = re.fullmatch(r"GET /_matrix/client/versions 200 (\d+)ms (\d+)", lines[0])
    assert match, lines[0]
    assert int(match.group(2)) == len(resp.content)
    assert re.fullmatch(r"GET /_matrix/client/v3/nope 404 \d+ms \d+", lines[1])
    assert "syt_secret_token" not in caplog.text


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_tls_files_mode(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    srv = await start_server(
        {"tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key}
    )
    assert srv.listening.client_url.startswith("https://")
    ctx = ssl.create_default_context(cafile=str(cert))
    for url in (srv.listening.client_url, srv.listening.federation_url):
        async with httpx.AsyncClient(base_url=url, verify=ctx) as tls_client:
            resp = await tls_client.get("/_matrix/key/v2/server")
            assert resp.status_code == 200
    async with httpx.AsyncClient(base_url=srv.listening.client_url.replace("https", "http")) as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get("/health")


async def test_tls_files_mode_needs_paths(start_server: StartServer) -> None:
    with pytest.raises(StartupError, match="tls.cert_path"):
        await start_server({"tls.mode": "files"})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_tls_files_must_load(start_server: StartServer, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert_a, _ = _self_signed(tmp_path / "a")
    _, key_b = _self_signed(tmp_path / "b")
    with pytest.raises(StartupError, match="cannot load tls.cert_path"):
        await start_server(
            {"tls.mode": "files", "tls.cert_path": cert_a, "tls.key_path": key_b}
        )
    with pytest.raises(StartupError, match="cannot load tls.cert_path"):
        await start_server(
            {"tls.mode": "files", "tls.cert_path": tmp_path / "none.pem", "tls.key_path": key_b}
        )


RUN_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dendrite_lite.config import Config, ListenConfig, ServerConfig
    from dendrite_lite.crypto.keys import new_server_key, write_signing_key
    from dendrite_lite.server import run

    data = Path(sys.argv[1])
    write_signing_key(data / "signing.key", new_server_key())
    run(Config(server=ServerConfig(server_name="run.test", data_dir=data),
               listen=ListenConfig(client="127.0.0.1:0", federation="")))
    """
)


async def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_SCRIPT, str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stderr is not None
    try:
        first = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        # stderr is a pipe: journald-style lines, no timestamp.
        match = re.fullmatch(r"INFO dendrite_lite\.server: client listener on (\S+)\n", first)
        assert match, first
        async with httpx.AsyncClient(base_url=match.group(1)) as c:
            assert (await c.get("/health")).text == "OK"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    rest = (await proc.stderr.read()).decode().splitlines()
    assert "INFO dendrite_lite.access: GET /health 200" in "\n".join(rest)
    assert rest[-1] == "INFO dendrite_lite.server: stopped"


async def test_database_from_newer_version_is_a_startup_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    write_signing_key(config.signing_key_path, new_server_key())
    config.database_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(config.database_path) as db:
        db.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT, applied_ts INT)"
        )
        db.execute("INSERT INTO schema_version VALUES (999999, 'future', 0)")
    with pytest.raises(StartupError, match="newer dendrite-lite"):
        await serve(config, shutdown_trigger=asyncio.Event().wait)


async def test_run_without_key_exits_1_with_a_hint(tmp_path: Path) -> None:
    script = RUN_SCRIPT.replace('write_signing_key(data / "signing.key", new_server_key())', "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(tmp_path),
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    text = err.decode()
    assert "ERROR dendrite_lite.server:" in text and "dendrite-lite generate-keys" in text
    assert "Traceback" not in text


async def test_tls_stop_is_quick_while_a_peer_holds_an_idle_connection(
    start_server: StartServer, tmp_path: Path
) -> None:
    # Federation peers (Synapse) keep idle TLS connections open; closing one waits for the peer's
    # close_notify, which used to hold every stop for asyncio's default 30 s.
    cert, key = _self_signed(tmp_path)
    srv = await start_server({"tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key})
    ctx = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(base_url=srv.listening.client_url, verify=ctx) as peer:
        assert (await peer.get("/health")).status_code == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        await srv.stop()
        # 2 s (event_loop.TLS_CLOSE_WAIT_S) plus the server's 0.1 s ticks; the graceful cap is 10 s.
        assert loop.time() - started < 5.0


async def test_stop_answers_long_polling_sync_at_once(start_server: StartServer) -> None:
    from tests.integration.sync_helpers import new_user, sync

    srv = await start_server({"registration.mode": "open", "ratelimit.enabled": False})
    alice = await new_user(srv.client, "longpoll")
    since = (await sync(alice))["next_batch"]
    poll = asyncio.create_task(sync(alice, since=since, timeout=30_000))
    await asyncio.sleep(0.5)  # parked in the notifier
    assert not poll.done()
    loop = asyncio.get_running_loop()
    started = loop.time()
    srv.stop_event.set()
    body = await asyncio.wait_for(poll, 5)  # answered (empty), not cut off
    assert body["next_batch"]
    await asyncio.wait_for(srv.task, 5)
    # Far under the 30 s long-poll and the 10 s graceful limit: storage closed after it answered.
    assert loop.time() - started < 3
    await srv.client.aclose()
    await srv.federation.aclose()


def two_certificates(tmp: Path) -> tuple[tuple[Path, Path], tuple[Path, Path], Path]:
    """Two self-signed (certificate, key) pairs and a CA file trusting both: for swaps."""
    first, second = _self_signed(tmp / "a"), _self_signed(tmp / "b")
    both = tmp / "both.pem"
    both.write_bytes(first[0].read_bytes() + second[0].read_bytes())
    return first, second, both


def _peer_certificate(url: str, ca: Path) -> bytes:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


async def test_certificate_swapped_on_the_live_context_without_restart(
    start_server: StartServer, tmp_path: Path
) -> None:
    first, second, both = two_certificates(tmp_path)
    srv = await start_server({"tls.mode": "files", "tls.cert_path": first[0], "tls.key_path": first[1]})
    assert srv.listening.tls is not None
    ctx = ssl.create_default_context(cafile=str(both))
    async with httpx.AsyncClient(base_url=srv.listening.client_url, verify=ctx) as held:
        assert (await held.get("/health")).status_code == 200  # a keep-alive connection, held
        url = srv.listening.client_url
        old = await asyncio.to_thread(_peer_certificate, url, both)
        assert old == ssl.PEM_cert_to_DER_cert(first[0].read_text())

        srv.listening.tls.load_cert_chain(second[0], second[1])  # what ACME renewal will do

        for url in (srv.listening.client_url, srv.listening.federation_url):
            assert url is not None
            new = await asyncio.to_thread(_peer_certificate, url, both)
            assert new == ssl.PEM_cert_to_DER_cert(second[0].read_text())
        assert (await held.get("/health")).status_code == 200  # the old connection still serves
