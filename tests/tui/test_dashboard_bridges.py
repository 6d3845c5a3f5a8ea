"""The dashboard's Bridges line: each application service's queue, in yellow while it is not
taking transactions; no line without appservices (dashboard_rows, pure); and the status the
server answers carries them (a real server with an AS that is down)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from dendrite_lite.tui.screens.dashboard import dashboard_rows
from tests.conftest import SERVER_NAME
from tests.integration.account_helpers import running_server
from tests.integration.appservice_fake import write_registration
from tests.integration.room_helpers import new_user


def _status(appservices: list[dict[str, Any]] | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "users": {"local": 1, "active": 1}, "rooms": 0,
        "events_per_second": {"local": 0.0, "remote": 0.0}, "sync_waiters": 0, "rss_bytes": 1,
        "database_bytes": 1, "media_bytes": 0, "certificate": {"mode": "proxy"},
        "registration": "closed", "doctor": None,
    }
    if appservices is not None:
        status["appservices"] = appservices
    return status


def test_bridges_line() -> None:
    assert "Bridges" not in dict(dashboard_rows(_status(None)))
    assert "Bridges" not in dict(dashboard_rows(_status([])))
    line = dict(dashboard_rows(_status([
        {"id": "whatsapp", "queued": 0, "failing": False, "last_error": None},
        {"id": "telegram", "queued": 12, "failing": True, "last_error": "answered 502"},
    ])))["Bridges"]
    assert line.plain == "whatsapp: 0 queued; telegram: 12 queued, failing (answered 502)"
    assert [str(s.style) for s in line.spans] == ["yellow"]


async def test_status_reports_a_bridge_that_is_down(tmp_path: Path) -> None:
    path = write_registration(
        tmp_path, "downbridge", url="http://127.0.0.1:9",  # the discard port: nothing answers
        namespaces={"users": [{"regex": f"@down_.*:{SERVER_NAME}", "exclusive": True}]},
    )
    overrides = {"appservices.registration_files": (path,), "appservices.retry_initial_s": 60.0}
    async with running_server(tmp_path / "data", overrides) as srv:
        user = await new_user(srv, "dash")
        room = await user.create_room()
        token = yaml.safe_load(path.read_text())["as_token"]
        await srv.client.post("/_matrix/client/v3/register", headers={"Authorization": f"Bearer {token}"},
                              json={"type": "m.login.application_service", "username": "down_1", "inhibit_login": True})
        await user.call("POST", f"/rooms/{room}/invite", {"user_id": f"@down_1:{SERVER_NAME}"})
        status = srv.app().extensions["dendrite_lite"].server_status
        for _ in range(100):
            (bridge,) = (await status.snapshot())["appservices"]
            if bridge["failing"]:
                break
            await asyncio.sleep(0.05)
        assert bridge["id"] == "downbridge" and bridge["failing"] and bridge["queued"] >= 1
        assert bridge["last_error"].startswith("unreachable")
