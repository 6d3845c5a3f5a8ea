"""jobs.list_jobs: each periodic job's record read as last run / result / next run (the ACME
renewer's state file, the scheduled backups' in-memory record, the outbox's destinations)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dendrite_lite.jobs import JobStatus, list_jobs
from dendrite_lite.storage import Storage
from dendrite_lite.storage import destinations as destinations_table
from dendrite_lite.tls.state import AcmeState, save_state
from tests.conftest import make_config, with_overrides


async def test_acme_backups_and_outbox_records(tmp_path: Path) -> None:
    config = with_overrides(
        make_config(tmp_path), {"tls.mode": "acme", "backup.interval_hours": 2.0}
    )
    now = time.time()
    save_state(
        config.acme_dir,
        AcmeState(
            names=config.acme_names,
            not_before=now - 100,
            not_after=now + 90 * 86400,
            next_renewal=now - 86400,
            last_attempt=now - 50,
            last_success=None,
            last_error="CA said no",
            failures=2,
            next_attempt=now + 3600,
        ),
    )
    backups: Any = SimpleNamespace(last_run_ts=5_000, last_result="ok: /backups/b1")
    storage = await Storage.open(tmp_path / "db.sqlite", readers=1)
    try:
        await storage.db.write(
            lambda c: destinations_table.upsert_destination_failure(
                c, "down.example", 7_000, "refused", 5_000, 12_000
            )
        )
        await storage.db.write(
            lambda c: destinations_table.upsert_destination_success(
                c, "up.example", 9_000
            )
        )
        jobs = {
            j.name: j
            for j in await list_jobs(
                config=config, storage=storage, presence=None, backups=backups
            )
        }
    finally:
        await storage.close()
    assert set(jobs) == {"acme-renewal", "federation-outbox-retry", "scheduled-backups"}
    acme = jobs["acme-renewal"]
    assert acme.last_run_ts == int((now - 50) * 1000)
    assert acme.last_result == "failed (2 in a row): CA said no"
    # Renewal was due a day ago and failed twice: the next try waits for the back-off.
    assert acme.next_run_ts == int((now + 3600) * 1000)
    assert jobs["scheduled-backups"] == JobStatus(
        "scheduled-backups", 5_000, "ok: /backups/b1", 5_000 + 2 * 3600 * 1000
    )
    assert jobs["federation-outbox-retry"] == JobStatus(
        "federation-outbox-retry", 9_000, "1 destination(s) backing off", 12_000
    )


async def test_remote_media_retention_record(tmp_path: Path) -> None:
    retention: Any = SimpleNamespace(
        last_run_ts=10_000, last_result="ok: 2 remote file(s) deleted, 10 bytes freed", interval_s=60.0
    )
    storage = await Storage.open(tmp_path / "db.sqlite", readers=1)
    try:
        jobs = await list_jobs(
            config=make_config(tmp_path), storage=storage, presence=None, backups=None,
            media_retention=retention,
        )
    finally:
        await storage.close()
    found = next(j for j in jobs if j.name == "remote-media-retention")
    assert found == JobStatus(
        "remote-media-retention", 10_000, "ok: 2 remote file(s) deleted, 10 bytes freed", 70_000
    )


async def test_email_notifications_record(tmp_path: Path) -> None:
    notifier: Any = SimpleNamespace(
        last_run_ts=20_000, last_result="ok: 1 mail(s) to 2 address(es)", next_run_ts=80_000
    )
    storage = await Storage.open(tmp_path / "db.sqlite", readers=1)
    try:
        jobs = await list_jobs(
            config=make_config(tmp_path), storage=storage, presence=None, backups=None,
            email_notifier=notifier,
        )
    finally:
        await storage.close()
    found = next(j for j in jobs if j.name == "email-notifications")
    # Not periodic: the next run is the soonest notification that may fall due.
    assert found == JobStatus(
        "email-notifications", 20_000, "ok: 1 mail(s) to 2 address(es)", 80_000
    )
