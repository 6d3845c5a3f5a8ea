"""The server's periodic jobs as the server admin sees them (GET /_dendrite_lite/admin/v1/jobs):
when each last ran, how that went, and when it runs next. Each job keeps its own record (the
presence timeout loop, the scheduled backups, the ACME renewer's state file, the federation
outbox's per-destination health); this only reads them, so nothing here can slow a job down.

Also Synapse's background updates switch (GET/POST /_synapse/admin/v1/background_updates/...):
we have no background updates (migrations finish before the server starts), so the switch is
only remembered, per process, for the tools that flip it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dendrite_lite.backup.schedule import BackupSchedule
from dendrite_lite.config import Config
from dendrite_lite.federation.destinations import list_destinations
from dendrite_lite.media.retention import RemoteMediaRetention
from dendrite_lite.storage import Storage
from dendrite_lite.tls.renewal import next_attempt_at
from dendrite_lite.tls.state import load_state
from dendrite_lite.users.email_notifier import EmailNotifier
from dendrite_lite.users.presence import TIMEOUT_CHECK_S, PresenceService

__all__ = ["BackgroundUpdates", "JobStatus", "list_jobs"]


@dataclass
class BackgroundUpdates:
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class JobStatus:
    name: str
    last_run_ts: (
        int | None
    )  # ms; None: not run yet (since start, for in-memory records)
    last_result: str | None
    next_run_ts: int | None  # ms; None: not scheduled (waits for work, or unknown)


async def list_jobs(
    *,
    config: Config,
    storage: Storage,
    presence: PresenceService | None,
    backups: BackupSchedule | None,
    media_retention: RemoteMediaRetention | None = None,
    email_notifier: EmailNotifier | None = None,
) -> list[JobStatus]:
    """Every periodic job this server runs with its config, by name."""
    jobs = [await _federation_outbox(storage)]
    if presence is not None:
        jobs.append(_presence(presence))
    if backups is not None:
        jobs.append(_backups(config, backups))
    if media_retention is not None:
        jobs.append(_media_retention(media_retention))
    if email_notifier is not None:  # runs when a notification may fall due, not periodically
        jobs.append(JobStatus(
            "email-notifications", email_notifier.last_run_ts, email_notifier.last_result,
            email_notifier.next_run_ts,
        ))
    if config.tls.mode == "acme":
        jobs.append(_acme(config))
    return sorted(jobs, key=lambda j: j.name)


async def _federation_outbox(storage: Storage) -> JobStatus:
    """Retries to the destinations that failed: one backoff per destination, so the job's last
    run is the newest attempt anywhere and its next run the soonest retry."""
    found = await list_destinations(storage)
    attempts = [t for h in found for t in (h.last_success_ts, h.last_failure_ts) if t]
    retries = [h.next_retry_ts for h in found if h.retry_interval_ms]
    failing = len(retries)
    return JobStatus(
        "federation-outbox-retry",
        max(attempts, default=None),
        f"{failing} destination(s) backing off" if failing else "ok",
        min(retries, default=None),
    )


def _periodic(name: str, last_run_ts: int | None, result: str | None, interval_s: float) -> JobStatus:
    """A job that runs every `interval_s` after its last run; before its first run (times kept
    in memory since start) the next one is not known."""
    next_run = last_run_ts + int(interval_s * 1000) if last_run_ts is not None else None
    return JobStatus(name, last_run_ts, result, next_run)


def _presence(presence: PresenceService) -> JobStatus:
    return _periodic(
        "presence-timeouts", presence.last_check_ts, presence.last_check_result, TIMEOUT_CHECK_S
    )


def _backups(config: Config, backups: BackupSchedule) -> JobStatus:
    """The first backup is one interval after start; its time is not known before it ran."""
    return _periodic(
        "scheduled-backups", backups.last_run_ts, backups.last_result,
        config.backup.interval_hours * 3600,
    )


def _media_retention(retention: RemoteMediaRetention) -> JobStatus:
    return _periodic(
        "remote-media-retention", retention.last_run_ts, retention.last_result, retention.interval_s
    )


def _acme(config: Config) -> JobStatus:
    """From the renewer's state file (tls/state.py), which it rewrites after every attempt."""
    state = load_state(config.acme_dir)
    has_certificate = state.not_after is not None
    due = next_attempt_at(state, config.acme_names, has_certificate=has_certificate)
    result = None
    if state.last_attempt is not None:
        result = (
            "ok"
            if not state.last_error
            else f"failed ({state.failures} in a row): {state.last_error}"
        )
    return JobStatus(
        "acme-renewal",
        _ms(state.last_attempt),
        result,
        _ms(max(due, time.time())),
    )


def _ms(seconds: float | None) -> int | None:
    return int(seconds * 1000) if seconds is not None else None
