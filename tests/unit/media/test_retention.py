"""media/retention.py: the scheduled pass deletes other servers' cached media nobody read within
media.remote_media_lifetime_days (files too), keeps recent or recently read copies and our own
uploads, records each pass for the job list, and survives a failing pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dendrite_lite.config import ConfigError, parse_config
from dendrite_lite.media.admin import MediaAdmin, PurgeResult
from dendrite_lite.media.repository import MediaRepository, MediaRow, now_ms
from dendrite_lite.media.retention import RemoteMediaRetention

US = "us.example.org"
DAY_MS = 86400 * 1000


async def _store(repo: MediaRepository, server: str, media_id: str, data: bytes, *, age_days: int,
                 read_days_ago: int | None = None, user_id: str | None = None) -> MediaRow:
    row = MediaRow(
        server_name=server, media_id=media_id, sha256=None, size=None, content_type="image/png",
        upload_name=None, user_id=user_id, created_ts=now_ms() - age_days * DAY_MS,
        last_access_ts=now_ms() - read_days_ago * DAY_MS if read_days_ago is not None else None,
    )

    async def body() -> AsyncIterator[bytes]:
        yield data

    return await repo.store(row, body(), max_bytes=1 << 20)


async def _ids(repo: MediaRepository) -> set[str]:
    rows = await repo.storage.db.read(lambda c: c.execute_fetchall("SELECT media_id FROM media"))
    return {r[0] for r in rows}


async def test_a_pass_deletes_remote_copies_unread_for_the_lifetime(repo: MediaRepository) -> None:
    old = await _store(repo, "them.org", "old", b"old cat picture", age_days=40)
    await _store(repo, "them.org", "oldButRead", b"read last week", age_days=40, read_days_ago=7)
    await _store(repo, "them.org", "new", b"new", age_days=2)
    await _store(repo, US, "ours", b"family photo", age_days=400, user_id="@me:us.example.org")
    retention = RemoteMediaRetention(MediaAdmin(repo, US), 30)

    result = await retention.purge_once()

    assert result == PurgeResult(1, len(b"old cat picture"))
    assert await _ids(repo) == {"oldButRead", "new", "ours"}
    assert not repo.path(old.sha256).exists()  # type: ignore[arg-type]
    assert retention.last_result == "ok: 1 remote file(s) deleted, 15 bytes freed"
    assert retention.last_run_ts is not None and abs(retention.last_run_ts - now_ms()) < 10_000


async def test_the_job_runs_on_its_schedule_and_outlives_a_failing_pass() -> None:
    calls: list[int] = []

    class FlakyAdmin:
        async def purge_remote(self, before_ts: int) -> PurgeResult:
            calls.append(before_ts)
            if len(calls) == 1:
                raise OSError("disk on fire")
            return PurgeResult(0, 0)

    admin: Any = FlakyAdmin()
    retention = RemoteMediaRetention(
        admin, 1, clock=lambda: 1_000_000.0, first_pass_after_s=0.01, interval_s=0.01
    )
    retention.start()
    try:
        for _ in range(200):
            if len(calls) >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await retention.close()
    assert len(calls) >= 2
    assert calls[0] == (1_000_000 - 86400) * 1000  # one day before "now"
    assert retention.last_result == "ok: 0 remote file(s) deleted, 0 bytes freed"


def test_lifetime_config() -> None:
    assert parse_config({}, None).media.remote_media_lifetime_days == 90.0
    assert parse_config({"media": {"remote_media_lifetime_days": 0}}, None).media.remote_media_lifetime_days == 0
    with pytest.raises(ConfigError, match=r"media\.remote_media_lifetime_days: -1 is out of range"):
        parse_config({"media": {"remote_media_lifetime_days": -1}}, None)
