"""Our own outbox's view of federation, for the configured server: the destinations the sender
is backing off from, with their last error, from the `federation_destinations` table the
sender writes after every attempt.

The database is opened read-only (SQLite URI mode=ro): the doctor may run next to the server,
and must never write to, lock or create its database. The SQL is storage's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from dendrite_lite.delegation.doctor.findings import Finding, Status, duration, utc_time
from dendrite_lite.storage.destinations import DestinationRow, select_destinations
from dendrite_lite.storage.outbox import select_pending_counts

__all__ = ["MAX_LISTED", "outbox_findings"]

# One finding per failing destination up to this many (the most recent failures), then one for
# the rest: a server that joined big rooms may know hundreds of dead servers.
MAX_LISTED = 10


async def _read(database: Path) -> tuple[list[DestinationRow], dict[str, int]]:
    conn = await aiosqlite.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return await select_destinations(conn), await select_pending_counts(conn)
    finally:
        await conn.close()


async def outbox_findings(database: Path, now_ms: int) -> list[Finding]:
    if not database.exists():
        return [Finding("outbox", "outbox", Status.OK,
                        f"The database {database} does not exist yet: nothing was sent.")]
    try:
        rows, pending = await _read(database)
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            # A database the server has not migrated yet (or not ours): it sent nothing.
            return [Finding("outbox", "outbox", Status.OK, f"{database} has no outbox yet: nothing was sent.")]
        return [Finding("outbox", "outbox", Status.WARN, f"Cannot read the outbox from {database} ({e}).",
                        "Run the doctor as the user the server runs as.")]
    except sqlite3.Error as e:
        return [Finding("outbox", "outbox", Status.WARN, f"Cannot read the outbox from {database} ({e}).", None)]
    failing = sorted((r for r in rows if r.retry_interval_ms > 0), key=lambda r: -(r.last_failure_ts or 0))
    if not failing:
        return [Finding("outbox", "outbox", Status.OK,
                        f"No destination is failing ({len(rows)} servers sent to so far).")]
    out = [_failing(r, pending.get(r.destination, 0), now_ms) for r in failing[:MAX_LISTED]]
    if len(failing) > MAX_LISTED:
        out.append(Finding(
            "outbox.more", "outbox", Status.WARN,
            f"{len(failing) - MAX_LISTED} more destinations are failing (of {len(rows)}).",
            "When most destinations fail, the problem is on this side: check that this machine"
            " reaches the internet on port 8448 and 443 and resolves names (DNS).",
        ))
    return out


def _failing(row: DestinationRow, pending: int, now_ms: int) -> Finding:
    name = row.destination
    if row.last_success_ts:
        since = f"failing since after its last success at {utc_time(row.last_success_ts / 1000)}"
    else:
        since = "never reached"
    when = f" at {utc_time(row.last_failure_ts / 1000)}" if row.last_failure_ts else ""
    if row.next_retry_ts > now_ms:
        retry = f"next attempt in {duration((row.next_retry_ts - now_ms) / 1000)}"
    else:
        retry = "retried with the next message for it"
    queued = f", {pending} event(s) queued for it" if pending else ""
    return Finding(
        "outbox.destination", "outbox", Status.WARN,
        f"Sending to {name}: {since}; last error{when}: {row.last_failure_reason or 'unknown'};"
        f" {retry}{queued}.",
        f"If {name} is down or gone, nothing to fix here: delivery resumes when it answers."
        f" Otherwise `dendrite-lite doctor {name}` shows what stops it.",
    )
