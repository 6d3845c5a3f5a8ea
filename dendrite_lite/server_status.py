"""The server at a glance, for the admin dashboard (GET /_dendrite_lite/admin/v1/status) and
the recent log lines for its live tail (GET /_dendrite_lite/admin/v1/logs).

Everything here is cheap enough to ask every two seconds: three counting queries on the reader
connections, a few stat() calls, in-memory counters (rooms/event_rate.py, the notifier) and two
small files (the ACME state, the doctor's last result). Nothing is counted per request or per
event in the database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dendrite_lite import __version__
from dendrite_lite.config import Config
from dendrite_lite.delegation.doctor_last_run import load_last_run
from dendrite_lite.log_buffer import LogBuffer
from dendrite_lite.rooms.event_rate import EventRate
from dendrite_lite.storage import Storage, server_stats
from dendrite_lite.sync.notifier import Notifier

__all__ = ["ACTIVE_DAYS", "LOG_PAGE", "ServerStatus"]

# "Active" users: seen in this many days (Synapse's monthly active users).
ACTIVE_DAYS = 30
# At most this many log records per answer; the tail asks again for the rest.
LOG_PAGE = 500
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ServerStatus:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        notifier: Notifier,
        event_rate: EventRate,
        logs: LogBuffer,
        started_at: float | None = None,
    ) -> None:
        self._config = config
        self._storage = storage
        self._notifier = notifier
        self.event_rate = event_rate
        self.logs = logs
        self._started = time.monotonic() if started_at is None else started_at
        # Each application service's delivery (appservice/sender.py statuses), when there are any.
        self.appservices: Callable[[], Awaitable[list[Any]]] | None = None

    async def snapshot(self) -> dict[str, Any]:
        config = self._config
        since_ms = int((time.time() - ACTIVE_DAYS * 86400) * 1000)
        local, active = await self._storage.db.read(
            lambda conn: server_stats.select_user_counts(conn, since_ms)
        )
        rooms = await self._storage.db.read(server_stats.select_room_count)
        media = await self._storage.db.read(server_stats.select_media_bytes)
        local_eps, remote_eps = self.event_rate.per_second()
        return {
            "server_name": config.server.server_name,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "users": {"local": local, "active": active},
            "rooms": rooms,
            "events_per_second": {"local": local_eps, "remote": remote_eps},
            "sync_waiters": self._notifier.listening_users(),
            "rss_bytes": _rss_bytes(),
            "database_bytes": _size(config.database_path)
            + _size(config.database_path.with_name(config.database_path.name + "-wal")),
            "media_bytes": media,
            "certificate": _certificate(config),
            "registration": config.registration.mode,
            "doctor": load_last_run(config.server.data_dir),
            "appservices": await self._appservices(),
        }

    async def _appservices(self) -> list[dict[str, Any]]:
        if self.appservices is None:
            return []
        return [
            {"id": a.id, "queued": a.queued_events, "failing": a.retry_interval_ms > 0,
             "last_error": a.last_failure_reason if a.retry_interval_ms > 0 else None}
            for a in await self.appservices()
        ]

    def log_lines(self, after: int) -> dict[str, Any]:
        """The records after number `after`. `restarted`: `after` is past the last record, so
        the numbers started again (a new server process); the reader gets them from the start."""
        restarted = after > self.logs.last_seq
        lines = self.logs.after(0 if restarted else after, LOG_PAGE)
        return {
            "records": [line.to_json() for line in lines],
            "next_after": lines[-1].seq if lines else (0 if restarted else after),
            "restarted": restarted,
        }


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None  # not Linux


def _certificate(config: Config) -> dict[str, Any]:
    mode = config.tls.mode
    if mode == "proxy":
        return {"mode": mode, "not_after": None, "days_left": None, "renewal": None}
    if mode == "files":
        return {"mode": mode, **_files_certificate(config), "renewal": "by you (tls.cert_path)"}
    # Late, as in server.py: the TLS modules bring cryptography, memory a proxied server never uses.
    from dendrite_lite.tls.status import tls_status

    status = tls_status(config, time.time())
    cert, state = status.certificate, status.state
    renewal = "scheduled"
    if state.last_error:
        renewal = f"failing ({state.failures} in a row): {state.last_error}"
    elif cert is None:
        renewal = "waiting for the first certificate"
    elif status.next_renewal is not None:
        renewal = f"due {time.strftime('%Y-%m-%d', time.gmtime(status.next_renewal))}"
    return {
        "mode": mode,
        "not_after": cert.not_after if cert else None,
        "days_left": status.days_left,
        "renewal": renewal,
        "error": status.certificate_error,
    }


def _files_certificate(config: Config) -> dict[str, Any]:
    from dendrite_lite.tls.certs import summarize

    path = config.tls.cert_path
    try:
        cert = summarize(path.read_bytes()) if path is not None else None
    except (OSError, ValueError) as e:
        return {"not_after": None, "days_left": None, "error": f"{path}: {e}"}
    if cert is None:
        return {"not_after": None, "days_left": None, "error": "no tls.cert_path"}
    return {"not_after": cert.not_after, "days_left": (cert.not_after - time.time()) / 86400}
