"""The application services of the config and each one's queue, for the configured server:
whether its transactions are getting through, what waits for it, and its last error, from the
appservice tables the server's AS queues write (appservice/queue.py).

Read-only, like outbox_checks: the doctor may run next to the server and must never write to,
lock or create its database. The SQL is storage's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from dendrite_lite.appservice.registration import (
    Registration,
    RegistrationError,
    load_registrations,
)
from dendrite_lite.config import Config
from dendrite_lite.delegation.doctor.findings import Finding, Status, duration, utc_time
from dendrite_lite.storage.appservices import (
    AppserviceState,
    select_pending_counts,
    select_states,
)

__all__ = ["appservice_findings"]

AREA = "appservices"


async def _read(database: Path) -> tuple[dict[str, AppserviceState], dict[str, int]]:
    conn = await aiosqlite.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return await select_states(conn), await select_pending_counts(conn)
    finally:
        await conn.close()


async def appservice_findings(config: Config, now_ms: int) -> list[Finding]:
    files = config.appservices.registration_files
    if not files:
        return []
    try:
        regs = load_registrations(files, config.server.server_name)
    except RegistrationError as e:
        return [Finding("appservices.registration", AREA, Status.FAIL, str(e),
                        "Fix the registration file (or regenerate it with the bridge), then restart.")]
    states: dict[str, AppserviceState] = {}
    counts: dict[str, int] = {}
    if config.database_path.exists():
        try:
            states, counts = await _read(config.database_path)
        except sqlite3.Error:
            pass  # not migrated yet: nothing was queued
    return [_finding(reg, states.get(reg.id), counts.get(reg.id, 0), now_ms) for reg in regs]


def _finding(reg: Registration, state: AppserviceState | None, queued: int, now_ms: int) -> Finding:
    name = f"Appservice {reg.id}"
    if reg.url is None:
        return Finding("appservices.queue", AREA, Status.OK,
                       f"{name} has no url: it only sends, nothing is pushed to it.")
    waiting = f"{queued} event(s) queued"
    if state is None or not state.retry_interval_ms:
        last = (f"last transaction taken at {utc_time(state.last_success_ts / 1000)}"
                if state is not None and state.last_success_ts else "nothing sent yet")
        return Finding("appservices.queue", AREA, Status.OK, f"{name} ({reg.url}): {last}; {waiting}.")
    when = f" at {utc_time(state.last_failure_ts / 1000)}" if state.last_failure_ts else ""
    retry = (f"next attempt in {duration((state.next_retry_ts - now_ms) / 1000)}"
             if state.next_retry_ts > now_ms else "retrying now")
    return Finding(
        "appservices.queue", AREA, Status.WARN,
        f"{name} ({reg.url}) is not taking transactions: last error{when}:"
        f" {state.last_failure_reason or 'unknown'}; {retry}; {waiting}.",
        f"Start the bridge (or check it listens on {reg.url}); nothing is lost meanwhile, and"
        " its queue is delivered in order when it answers.",
    )
