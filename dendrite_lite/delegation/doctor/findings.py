"""What a doctor check returns: one `Finding` per thing checked, never printed here.

A finding says which check (`check`, a stable id scripts can match on), the area it belongs to
(the CLI groups by it), OK/WARN/FAIL, one sentence why, and for anything not OK the exact fix:
a DNS record, the .well-known file's content, or a config line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["AREAS", "Finding", "Status", "worst"]

# The CLI shows areas in this order: the order in which a peer meets them, then what clients
# meet, then the local setup (only when the doctor runs for the configured server).
AREAS = ("server name", "delegation", "dns", "tls", "keys", "federation", "client", "local")


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
