"""The app shell, the dashboard and the logs screen under Pilot at 80x24, against the session
server's admin socket; the "not running" screen and its recovery against a server of their own."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor_last_run import LAST_RUN_FILE, save_last_run
from dendrite_lite.tui.admin_client import AdminClient
from dendrite_lite.tui.app import SCREENS, DendriteLiteApp
from dendrite_lite.tui.screens.dashboard import DashboardScreen
from dendrite_lite.tui.screens.logs import LogsScreen
from dendrite_lite.tui.screens.not_running import NotRunningScreen
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register, running_server
from tests.tui.pilot_helpers import until
from tests.tui.screen_text import screen_text

SIZE = (80, 24)
V3 = "/_matrix/client/v3"


def line_of(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(label))


async def test_dashboard_shows_the_servers_numbers(tui_server: RunningServer, admin_socket: Path) -> None:
    # A fresh data directory would do, but the session server is shared: count what is there.
    fresh = await register(tui_server.client, "dash_alice")
    await register(tui_server.client, "dash_bob")
    created = await tui_server.client.post(
        f"{V3}/createRoom", json={"name": "Dashboard"}, headers=auth_header(fresh["access_token"])
    )
    assert created.status_code == 200
    svc = tui_server.app().extensions["dendrite_lite"]
    expected = await svc.server_status.snapshot()
    app = DendriteLiteApp(AdminClient(admin_socket), poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "Users" in screen_text(app) and " up " in screen_text(app))
        assert isinstance(app.screen, DashboardScreen)
        text = screen_text(app)
    lines = text.splitlines()
    assert len(lines) == 24 and max(len(line) for line in lines) <= 80
    assert lines[0].strip().startswith("test.localhost  ·  dendrite-lite 0.1.0  ·  up ")
    users = expected["users"]
    assert line_of(text, "Users").split() == [
        "Users", str(users["local"]), "local,", str(users["active"]), "active", "in", "30", "days"
    ]
    assert users["local"] >= 2
    assert line_of(text, "Rooms").split() == ["Rooms", str(expected["rooms"])]
    assert "local" in line_of(text, "Events/s") and "remote (last minute)" in line_of(text, "Events/s")
    assert line_of(text, "Registration").split() == ["Registration", "open"]
    assert "HTTPS by the reverse proxy" in line_of(text, "Certificate")
    assert "never run" in line_of(text, "Doctor")
    assert "MiB" in line_of(text, "Memory (RSS)")
    # The footer names every screen's key and q.
    footer = lines[-1]
    for key, (label, _) in SCREENS.items():
        assert f"{key} {label}" in footer, footer
    assert "q Quit" in footer


async def test_dashboard_counts_follow_the_server(tui_server: RunningServer, admin_socket: Path) -> None:
    app = DendriteLiteApp(AdminClient(admin_socket), poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "Rooms" in screen_text(app))
        rooms = int(line_of(screen_text(app), "Rooms").split()[1])
        carol = await register(tui_server.client, "dash_carol")
        for _ in range(2):
            resp = await tui_server.client.post(
                f"{V3}/createRoom", json={}, headers=auth_header(carol["access_token"])
            )
            assert resp.status_code == 200
        await until(pilot, lambda: line_of(screen_text(app), "Rooms").split() == ["Rooms", str(rooms + 2)])


async def test_dashboard_shows_the_doctors_last_result(tui_server: RunningServer, admin_socket: Path) -> None:
    data_dir = tui_server.config.server.data_dir
    save_last_run(data_dir, "test.localhost", [
        Finding("dns.a", "dns", Status.OK, "resolves"),
        Finding("local.signing_key", "local", Status.FAIL, "readable by everyone"),
    ], 1_700_000_000.0)
    try:
        app = DendriteLiteApp(AdminClient(admin_socket), poll_s=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "Doctor" in screen_text(app))
            doctor = line_of(screen_text(app), "Doctor")
    finally:
        (data_dir / LAST_RUN_FILE).unlink()
    assert doctor.split() == ["Doctor", "FAIL", "1", "fail,", "0", "warn,", "1", "ok", "(2023-11-14)"]


async def test_logs_screen_tails_the_server_log(
    tui_server: RunningServer, admin_socket: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = DendriteLiteApp(AdminClient(admin_socket), poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen))
        assert screen_text(app).splitlines()[0].strip() == "Logs (live)"
        resp = await tui_server.client.get("/_matrix/client/versions")
        assert resp.status_code == 200
        logging.getLogger("dendrite_lite.rooms").warning("disk nearly full on /var/lib")
        await until(pilot, lambda: "disk nearly full on /var/lib" in screen_text(app))
        text = screen_text(app)
        line = next(li for li in text.splitlines() if "disk nearly full" in li)
        assert "WARNING dendrite_lite.rooms: disk nearly full on /var/lib" in line
        assert "dendrite_lite.access: GET /_matrix/client/versions 200" in text
        footer = text.splitlines()[-1]
        for key, (label, _) in SCREENS.items():
            assert f"{key} {label}" in footer, footer
        assert "space Pause" in footer and "q Quit" in footer
        # Paused, new lines wait; resumed, they come.
        await pilot.press("space")
        assert "paused" in screen_text(app).splitlines()[0]
        logging.getLogger("dendrite_lite.rooms").warning("while paused")
        await pilot.pause(0.5)
        assert "while paused" not in screen_text(app)
        await pilot.press("space")
        await until(pilot, lambda: "while paused" in screen_text(app))
        # Back to the dashboard with its key.
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen))


async def test_not_running_screen_then_recovery(tmp_path: Path) -> None:
    socket_path = tmp_path / "admin.sock"
    app = DendriteLiteApp(AdminClient(socket_path), poll_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "q Quit" in screen_text(app) and "Retrying" in screen_text(app))
        assert isinstance(app.screen, NotRunningScreen)
        text = screen_text(app)
        flat = " ".join(text.translate({ord(c): " " for c in "┃━┏┓┗┛"}).split())
        assert "The server is not running." in flat
        assert "No answer on its admin socket (no socket file):" in flat
        assert str(socket_path) in "".join(flat.split())  # a long path wraps
        assert "Start it with `dendrite-lite run`" in flat
        assert "Retrying every 0.2 s" in flat
        assert "q Quit" in text.splitlines()[-1]
        await pilot.press("l")  # no screen to show yet
        assert isinstance(app.screen, NotRunningScreen)
        async with running_server(tmp_path) as srv:
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await until(pilot, lambda: "Users" in screen_text(app))
            assert screen_text(app).strip().startswith(srv.config.server.server_name)
            assert line_of(screen_text(app), "Users").split()[1] == "0"
        # Stopped again: the screen comes back.
        await until(pilot, lambda: isinstance(app.screen, NotRunningScreen))
        await pilot.press("q")
    assert app.return_code == 0
