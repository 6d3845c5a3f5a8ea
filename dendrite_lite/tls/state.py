"""The ACME state kept in <data_dir>/acme/: what `tls status`, doctor and the renewer share.

Files (all written atomically, temporary file + rename, mode 0600 in a 0700 directory):
- `state.json`: the certificate's names, issuer and validity, when renewal is due, and how the
  last attempt went (AcmeState). The renewer writes it after every attempt; readers never write.
- `certificate.pem` (the full chain) and `certificate.key`: what the TLS listeners serve.
- `account.json`: the ACME account key and registration, written by the issuer.
- `renew-request`: present when `dendrite-lite tls renew` asked a running server to renew now;
  the renewer removes it when it starts that attempt.
- `renewer.lock`: flock()ed by the process that renews (the running server), so `tls renew`
  knows whether to ask the server or to renew by itself.

Times are Unix seconds (float), None when not known.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AcmeState",
    "CERTIFICATE_FILE",
    "KEY_FILE",
    "ACCOUNT_FILE",
    "STATE_FILE",
    "RENEW_REQUEST_FILE",
    "RENEWER_LOCK_FILE",
    "load_state",
    "save_state",
    "write_private",
]

CERTIFICATE_FILE = "certificate.pem"
KEY_FILE = "certificate.key"
ACCOUNT_FILE = "account.json"
STATE_FILE = "state.json"
RENEW_REQUEST_FILE = "renew-request"
RENEWER_LOCK_FILE = "renewer.lock"


@dataclass(frozen=True, slots=True)
class AcmeState:
    names: tuple[str, ...] = ()  # the names on the current certificate
    issuer: str = ""  # the current certificate's issuer, as an RFC 4514 string
    not_before: float | None = None
    not_after: float | None = None
    next_renewal: float | None = None  # when renewal is due (a third of the lifetime left, or ARI)
    ari_window: tuple[float, float] | None = None  # ARI's suggested window, when offered
    ari_next_check: float | None = None  # when to ask the CA's ARI again (its Retry-After)
    challenge: str = ""  # the challenge type that got the current certificate
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str = ""  # "" after a success; else one line saying why the last attempt failed
    failures: int = 0  # attempts failed in a row: the back-off grows with it
    next_attempt: float | None = None  # not before this, after failures (the back-off)
    directory: str = ""  # the ACME directory the certificate came from
    extra: dict[str, Any] = field(default_factory=dict)  # kept as read: newer versions' fields

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(data.pop("extra"))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AcmeState:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        if "names" in values:
            values["names"] = tuple(values["names"])
        if values.get("ari_window") is not None:
            values["ari_window"] = tuple(values["ari_window"])
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


def load_state(acme_dir: Path) -> AcmeState:
    """The saved state; an empty AcmeState when there is none yet (or it is unreadable: the
    renewer then starts afresh rather than refusing to run)."""
    try:
        data = json.loads((acme_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return AcmeState()
    if not isinstance(data, dict):
        return AcmeState()
    try:
        return AcmeState.from_json(data)
    except (TypeError, ValueError):
        return AcmeState()


def save_state(acme_dir: Path, state: AcmeState) -> None:
    text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    write_private(acme_dir / STATE_FILE, text.encode())


def write_private(path: Path, data: bytes) -> None:
    """Write `path` with mode 0600 (its directory 0700) through a temporary file and a rename:
    a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # an existing temporary file keeps its old mode through O_CREAT
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
