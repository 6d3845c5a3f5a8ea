"""The doctor's last result for the configured server, kept in its data directory
(doctor-last.json) so the dashboard can show it without running the network checks itself.

Only `dendrite-lite doctor` without SERVER_NAME writes it (a check of the configured server);
the file holds the counts per status, the worst status, when it ran, and the problems found
(WARN and FAIL findings, their why), so the dashboard says what to look at.

It lives outside the doctor package: the running server reads the file, and importing anything
in that package loads the checks' network stack (httpx, dnspython, cryptography) with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dendrite_lite.delegation.doctor.findings import Finding

__all__ = ["LAST_RUN_FILE", "load_last_run", "save_last_run"]

LAST_RUN_FILE = "doctor-last.json"


def save_last_run(data_dir: Path, server_name: str, findings: list[Finding], now: float) -> None:
    from dendrite_lite.delegation.doctor.findings import Status, worst

    summary = {
        "server_name": server_name,
        "ran_at": now,
        "worst": worst(findings).value,
        "counts": {s.value: sum(1 for f in findings if f.status is s) for s in Status},
        "problems": [
            {"status": f.status.value, "check": f.check, "why": f.why}
            for f in findings if f.status is not Status.OK
        ],
    }
    path = data_dir / LAST_RUN_FILE
    tmp = path.with_name(path.name + ".tmp")
    # Written whole then renamed: the server reading it never sees half a file.
    tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def load_last_run(data_dir: Path) -> dict[str, Any] | None:
    """The last summary, or None when the doctor never ran here (or left an unreadable file)."""
    try:
        data = json.loads((data_dir / LAST_RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
