"""Scheduled backups made by the running server (config [backup]): one every `interval_hours`
into a new directory under `directory`, keeping the newest `keep`.

A backup is made in a worker thread (file copies and SQLite's backup API block), so requests go
on being served; the server's own writes continue during it (the snapshot is a read). The first
one is made one interval after start, not at start: a server restarted in a crash loop must not
fill the disk with backups.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from dendrite_lite.backup.create import (
    MANIFEST,
    BackupError,
    BackupSummary,
    make_backup,
)
from dendrite_lite.config import Config

__all__ = ["SCHEDULED_PREFIX", "BackupSchedule"]

log = logging.getLogger(__name__)

# Scheduled backups are named dendrite-lite-backup-<UTC time>; only these are ever pruned.
SCHEDULED_PREFIX = "dendrite-lite-backup-"


class BackupSchedule:
    def __init__(self, config: Config, directory: Path) -> None:
        self._config = config
        self._directory = directory
        self._interval_s = config.backup.interval_hours * 3600
        self._keep = config.backup.keep
        self._task: asyncio.Task[None] | None = None
        self.last_result: str | None = None  # for the admin API and the TUI
        self.last_run_ts: int | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduled-backups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def backup_now(self) -> BackupSummary:
        """Make one scheduled backup and prune the old ones."""
        self._directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        dest = self._directory / f"{SCHEDULED_PREFIX}{stamp}"
        n = 1
        while dest.exists():  # two within one second (short intervals in tests)
            n += 1
            dest = self._directory / f"{SCHEDULED_PREFIX}{stamp}-{n}"
        summary = await asyncio.to_thread(make_backup, self._config, dest)
        await asyncio.to_thread(self._prune)
        return summary

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.last_run_ts = int(time.time() * 1000)
            try:
                summary = await self.backup_now()
            except (BackupError, OSError) as e:
                self.last_result = f"failed: {e}"
                log.error("scheduled backup failed: %s", e)
                continue
            self.last_result = f"ok: {summary.path}"
            log.info(
                "scheduled backup written to %s (%d media files)", summary.path, summary.media_files
            )

    def _prune(self) -> None:
        backups = sorted(
            p
            for p in self._directory.iterdir()
            if p.name.startswith(SCHEDULED_PREFIX) and (p / MANIFEST).is_file()
        )
        for old in backups[: max(0, len(backups) - self._keep)]:
            shutil.rmtree(old, ignore_errors=True)
            log.info("deleted old scheduled backup %s", old)
