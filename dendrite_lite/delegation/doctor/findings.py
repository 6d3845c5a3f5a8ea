"""What a doctor check returns: one `Finding` per thing checked, never printed here.

A finding says which check (`check`, a stable id scripts can match on), the area it belongs to
(the CLI groups by it), OK/WARN/FAIL, one sentence why, and for anything not OK the exact fix:
a DNS record, the .well-known file's content, or a config line.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["AREAS", "Finding", "Status", "duration", "utc_time", "worst"]

# The CLI shows areas in this order: the order in which a peer meets them, then what clients
# meet, then what only the configured server's own doctor sees (its ports from its public IP,
# its outbox, bridges, call relays, mail server, its certificate and files).
AREAS = (
    "server name", "delegation", "dns", "ports", "tls", "keys", "federation", "client", "outbox",
    "appservices", "calls", "email", "sso", "certificate", "local",
)


class Status(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # e.g. "well_known.m_server", "tls.chain"
    area: str  # one of AREAS
    status: Status
    why: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "area": self.area,
            "status": self.status.value,
            "why": self.why,
            "fix": self.fix,
        }


def worst(findings: list[Finding]) -> Status:
    order = [Status.OK, Status.WARN, Status.FAIL]
    return max((f.status for f in findings), key=order.index, default=Status.OK)


def utc_time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def duration(seconds: float) -> str:
    """A span in the largest unit that keeps it readable: 45 s, 12 min, 5.5 h, 3.2 days."""
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
