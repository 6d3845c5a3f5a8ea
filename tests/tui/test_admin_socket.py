"""The admin unix socket over HTTP: no token needed, owner-only, every admin endpoint; the
dashboard's status and log tail; the admin API on the client listener (admins only, and off
with admin.client_api = false); a stale socket replaced, a live one refused."""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path

import httpx
import pytest

from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor_last_run import LAST_RUN_FILE, save_last_run
from dendrite_lite.server import StartupError
from dendrite_lite.storage import accounts
from dendrite_lite.tls.certs import self_signed, summarize
from tests.conftest import RunningServer
from tests.integration.account_helpers import (
    auth_header,
    register,
    running_server,
    server_storage,
)

STATUS = "/_dendrite_lite/admin/v1/status"
LOGS = "/_dendrite_lite/admin/v1/logs"
TOKENS = "/_synapse/admin/v1/registration_tokens"
V3 = "/_matrix/client/v3"


def socket_client(path: Path) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(path)), base_url="http://admin", timeout=10
    )


async def test_socket_is_owner_only_and_needs_no_token(tui_server: RunningServer, admin_socket: Path) -> None:
    assert admin_socket == tui_server.config.server.data_dir / "admin.sock"
    mode = os.stat(admin_socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    async with socket_client(admin_socket) as admin:
        # Synapse's admin API (created and listed: the socket can write, too) ...
        created = await admin.post(f"{TOKENS}/new", json={"token": "sockettoken", "uses_allowed": 1})
        assert created.status_code == 200, created.text
        listed = await admin.get(TOKENS)
        assert listed.status_code == 200
        assert "sockettoken" in [t["token"] for t in listed.json()["registration_tokens"]]
        # ... and dendrite-lite's own.
        assert (await admin.get(STATUS)).status_code == 200
        # The client API is not on the socket.
        assert (await admin.get(f"{V3}/account/whoami")).status_code == 404


async def test_status_counts_what_the_server_holds(tui_server: RunningServer, admin_socket: Path) -> None:
    async with socket_client(admin_socket) as admin:
        before = (await admin.get(STATUS)).json()
        alice = await register(tui_server.client, "status_alice")
        await register(tui_server.client, "status_bob")
        room = await tui_server.client.post(
            f"{V3}/createRoom", json={}, headers=auth_header(alice["access_token"])
        )
        assert room.status_code == 200, room.text
        after = (await admin.get(STATUS)).json()
    assert set(after) == {
        "server_name", "version", "uptime_s", "users", "rooms", "events_per_second",
        "sync_waiters", "rss_bytes", "database_bytes", "media_bytes", "certificate",
        "registration", "doctor", "appservices",
    }
    assert after["appservices"] == []  # none registered
    assert after["server_name"] == tui_server.config.server.server_name
    assert after["users"]["local"] == before["users"]["local"] + 2
    assert after["users"]["active"] == before["users"]["active"] + 2
    assert after["rooms"] == before["rooms"] + 1
    # createRoom stores several events (create, member, power levels, join rules, ...), all ours.
    minute = after["events_per_second"]["local"] * 60 - before["events_per_second"]["local"] * 60
    assert minute >= 5
    assert after["events_per_second"]["remote"] == 0
    assert after["uptime_s"] >= before["uptime_s"] > 0
    db = tui_server.config.database_path
    assert after["database_bytes"] >= db.stat().st_size > 0
    assert after["rss_bytes"] > 10 * 1024 * 1024
    assert after["registration"] == "open"
    assert after["certificate"]["mode"] == "proxy" and after["certificate"]["not_after"] is None


async def test_status_shows_the_doctors_last_result(tui_server: RunningServer, admin_socket: Path) -> None:
    data_dir = tui_server.config.server.data_dir
    async with socket_client(admin_socket) as admin:
        (data_dir / LAST_RUN_FILE).unlink(missing_ok=True)
        assert (await admin.get(STATUS)).json()["doctor"] is None
        findings = [
            Finding("dns.a", "dns", Status.OK, "resolves"),
            Finding("tls.chain", "tls", Status.WARN, "the chain lacks an intermediate"),
        ]
        save_last_run(data_dir, "test.localhost", findings, 1_700_000_000.0)
        try:
            doctor = (await admin.get(STATUS)).json()["doctor"]
        finally:
            (data_dir / LAST_RUN_FILE).unlink()
    assert doctor["worst"] == "WARN"
    assert doctor["counts"] == {"OK": 1, "WARN": 1, "FAIL": 0}
    assert doctor["ran_at"] == 1_700_000_000.0
    assert doctor["problems"] == [
        {"status": "WARN", "check": "tls.chain", "why": "the chain lacks an intermediate"}
    ]


async def test_logs_tail_in_order_and_from_a_number(
    tui_server: RunningServer, admin_socket: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with socket_client(admin_socket) as admin:
        first = (await admin.get(LOGS)).json()
        start = first["next_after"]
        # The access log writes a line for this request on the client listener.
        assert (await tui_server.client.get("/_matrix/client/versions?x=secret")).status_code == 200
        logging.getLogger("dendrite_lite.test").warning("a line for the tail")
        tail = (await admin.get(LOGS, params={"after": start})).json()
        records = tail["records"]
        assert [r["seq"] for r in records] == list(range(start + 1, start + 1 + len(records)))
        assert tail["next_after"] == records[-1]["seq"]
        assert tail["restarted"] is False
        access = [r for r in records if r["logger"] == "dendrite_lite.access"]
        assert access and access[0]["message"].startswith("GET /_matrix/client/versions 200")
        assert "secret" not in access[0]["message"]
        mine = [r for r in records if r["logger"] == "dendrite_lite.test"]
        assert mine == [{**mine[0], "level": "WARNING", "message": "a line for the tail"}]
        # The TUI's own polls are not logged: they would fill the tail they read.
        assert not [r for r in records if r["logger"] == "dendrite_lite.access" and "/_dendrite_lite/admin" in r["message"]]
        # Asking on from there repeats nothing; a number from before a restart starts over.
        again = (await admin.get(LOGS, params={"after": tail["next_after"]})).json()
        assert all(r["seq"] > tail["next_after"] for r in again["records"])
        assert "a line for the tail" not in [r["message"] for r in again["records"]]
        restarted = (await admin.get(LOGS, params={"after": 10**9})).json()
        assert restarted["restarted"] is True and restarted["records"][0]["seq"] >= 1
        bad = await admin.get(LOGS, params={"after": "-1"})
        assert (bad.status_code, bad.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_client_listener_admins_only(tui_server: RunningServer) -> None:
    user = await register(tui_server.client, "status_notadmin")
    resp = await tui_server.client.get(STATUS, headers=auth_header(user["access_token"]))
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
    assert (await tui_server.client.get(STATUS)).status_code == 401
    await server_storage(tui_server).db.write(
        lambda conn: accounts.update_account_admin(conn, user["user_id"], True)
    )
    resp = await tui_server.client.get(STATUS, headers=auth_header(user["access_token"]))
    assert resp.status_code == 200
    assert resp.json()["server_name"] == tui_server.config.server.server_name


async def test_client_api_off_leaves_the_socket_only(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"admin.client_api": False}) as srv:
        user = await register(srv.client, "offadmin")
        await server_storage(srv).db.write(
            lambda conn: accounts.update_account_admin(conn, user["user_id"], True)
        )
        for path in (STATUS, TOKENS):
            resp = await srv.client.get(path, headers=auth_header(user["access_token"]))
            assert (resp.status_code, resp.json()["errcode"]) == (404, "M_UNRECOGNIZED"), path
        assert srv.listening.admin_socket is not None
        async with socket_client(srv.listening.admin_socket) as admin:
            assert (await admin.get(TOKENS)).status_code == 200
            assert (await admin.get(STATUS)).json()["users"]["local"] == 1


async def test_stale_socket_replaced_live_one_refused_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    # A socket file nobody listens on, as a killed server leaves it.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    async with running_server(tmp_path) as srv:
        assert srv.listening.admin_socket == path
        async with socket_client(path) as admin:
            assert (await admin.get(STATUS)).status_code == 200
        # A second server on the same data directory: refused, and the socket stays the first's.
        with pytest.raises(StartupError, match="another server is running"):
            async with running_server(tmp_path):
                pass
        async with socket_client(path) as admin:
            assert (await admin.get(STATUS)).status_code == 200
    assert not path.exists()


async def test_a_file_in_the_way_is_not_removed(tmp_path: Path) -> None:
    (tmp_path / "admin.sock").write_text("mine")
    with pytest.raises(StartupError, match="exists and is not a socket"):
        async with running_server(tmp_path):
            pass
    assert (tmp_path / "admin.sock").read_text() == "mine"


async def test_status_reads_the_certificate_of_tls_files(tmp_path: Path) -> None:
    cert_pem, key_pem = self_signed(["test.localhost"], days=20)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    overrides = {"tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key,
                 "listen.client_tls": False, "listen.federation_tls": True}
    async with running_server(tmp_path / "data", overrides) as srv:
        assert srv.listening.admin_socket is not None
        async with socket_client(srv.listening.admin_socket) as admin:
            status = (await admin.get(STATUS)).json()
    certificate = status["certificate"]
    assert certificate["mode"] == "files"
    assert certificate["not_after"] == summarize(cert_pem).not_after
    assert 19.9 < certificate["days_left"] <= 20
    assert certificate["renewal"] == "by you (tls.cert_path)"
