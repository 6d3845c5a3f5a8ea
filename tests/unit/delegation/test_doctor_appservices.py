"""The doctor's appservices area: each registration's queue, read-only from a real database
(delegation/doctor/appservice_checks.py)."""

from __future__ import annotations

import datetime
from pathlib import Path

import aiosqlite

from dendrite_lite.config import AppservicesConfig, Config, ServerConfig
from dendrite_lite.delegation.doctor import Status
from dendrite_lite.delegation.doctor.appservice_checks import appservice_findings
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table
from tests.integration.appservice_fake import write_registration

NOW_MS = int(datetime.datetime(2027, 1, 15, 8, 0, tzinfo=datetime.UTC).timestamp() * 1000)


def _config(tmp_path: Path, *files: Path) -> Config:
    return Config(
        server=ServerConfig(server_name="example.org", data_dir=tmp_path),
        appservices=AppservicesConfig(registration_files=files),
    )


async def test_no_appservices_no_findings(tmp_path: Path) -> None:
    assert await appservice_findings(_config(tmp_path), NOW_MS) == []


async def test_healthy_failing_and_sender_only(tmp_path: Path) -> None:
    up = write_registration(tmp_path, "up", url="http://127.0.0.1:1")
    down = write_registration(tmp_path, "down", url="http://127.0.0.1:2")
    quiet = write_registration(tmp_path, "quiet")
    config = _config(tmp_path, up, down, quiet)
    storage = await Storage.open(config.database_path)

    async def write(conn: aiosqlite.Connection) -> None:
        await table.acknowledge_txn(conn, "up", 0, NOW_MS - 60_000)
        await table.insert_outbox_events(conn, [("down", "$a"), ("down", "$b")], NOW_MS)
        await table.update_failure(conn, "down", NOW_MS - 1_000, "answered 502", 4_000, NOW_MS + 4_000)

    try:
        await storage.db.write(write)
        up_f, down_f, quiet_f = await appservice_findings(config, NOW_MS)
    finally:
        await storage.close()
    assert (up_f.status, up_f.why) == (
        Status.OK, "Appservice up (http://127.0.0.1:1): last transaction taken at 2027-01-15 07:59 UTC;"
        " 0 event(s) queued.",
    )
    assert down_f.status is Status.WARN
    assert down_f.why == (
        "Appservice down (http://127.0.0.1:2) is not taking transactions: last error at"
        " 2027-01-15 07:59 UTC: answered 502; next attempt in 4 s; 2 event(s) queued."
    )
    assert quiet_f.status is Status.OK and "has no url" in quiet_f.why


async def test_a_broken_registration_fails(tmp_path: Path) -> None:
    bad = write_registration(tmp_path, "bad", namespaces={"users": [{"regex": "(", "exclusive": True}]})
    (finding,) = await appservice_findings(_config(tmp_path, bad), NOW_MS)
    assert finding.status is Status.FAIL and f"{bad}: namespaces.users[0].regex" in finding.why
    assert not (tmp_path / "homeserver.db").exists()
