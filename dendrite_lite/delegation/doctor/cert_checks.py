"""The certificate on disk and its renewal, for the configured server.

- tls.mode = "acme": the certificate the renewer keeps in <data_dir>/acme/ and its state file,
  as `tls status` reads them (tls/status.py): no certificate, expired or expiring within a week FAIL (the renewer should
  have renewed long before: a third of the lifetime, about 30 days of a 90-day certificate);
  a failed last attempt WARNs with its error and when the next one is;
- tls.mode = "files": tls.cert_path's expiry the same way, and its names;
- tls.mode = "proxy": the reverse proxy's certificate is not ours to read; the remote TLS
  checks above see it as peers do.

What the listeners serve is checked remotely (tls.py); this reads the files, so it also tells
a renewal that went wrong on disk before peers notice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from dendrite_lite.config import Config
from dendrite_lite.delegation.doctor.findings import Finding, Status, duration, utc_time
from dendrite_lite.tls.certs import CertificateSummary, summarize
from dendrite_lite.tls.state import CERTIFICATE_FILE
from dendrite_lite.tls.status import tls_status

__all__ = ["EXPIRY_FAIL_DAYS", "certificate_findings", "covers"]

EXPIRY_FAIL_DAYS = 7
_RENEW_NOW = "`dendrite-lite tls renew` (then `dendrite-lite tls status` says how it went)"


def certificate_findings(config: Config, names: Iterable[str], now: float) -> list[Finding]:
    """`names`: what the certificate must cover (the name peers check, the client host)."""
    mode = config.tls.mode
    if mode == "acme":
        return _acme_findings(config, now)
    if mode == "files" and config.tls.cert_path is not None:
        return _files_findings(config.tls.cert_path, list(dict.fromkeys(names)), now)
    return [Finding("certificate", "certificate", Status.OK,
                    'tls.mode = "proxy": the reverse proxy holds the certificate (checked over TLS above).')]


def _load(path: Path) -> CertificateSummary | str:
    """The leaf of a PEM chain, or why there is none."""
    try:
        return summarize(path.read_bytes())
    except FileNotFoundError:
        return "does not exist"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    except (ValueError, IndexError):
        return "holds no PEM certificate"


def _acme_findings(config: Config, now: float) -> list[Finding]:
    # tls status's reading: certificate.pem is the truth, state.json says how renewal goes.
    status = tls_status(config, now)
    state, cert = status.state, status.certificate
    path = config.acme_dir / CERTIFICATE_FILE
    if cert is None:
        why = status.certificate_error or f"{path} does not exist"
        last = f" The last attempt failed: {state.last_error}." if state.last_error else ""
        return [Finding(
            "certificate.acme", "certificate", Status.FAIL,
            f"No ACME certificate yet: {why}, so the TLS listeners serve a stand-in peers refuse.{last}",
            f"Make {', '.join(config.acme_names)} resolve to this machine and port 80"
            f" (listen.acme_http = {config.listen.acme_http!r}) or 443 reach it from the internet,"
            f" then start the server or run {_RENEW_NOW}.",
        )]
    expiry = _expiry(cert, str(path), now, "the renewer should have replaced it weeks ago. " + _RENEW_NOW)
    if expiry.status is Status.FAIL:
        return [expiry]
    out = [expiry]
    if status.names_pending:
        out.append(Finding(
            "certificate.names", "certificate", Status.WARN,
            f"The certificate is for {', '.join(cert.names)}, the config asks for"
            f" {', '.join(config.acme_names)} (tls.acme_names): the next renewal gets them.",
            f"Renew now: {_RENEW_NOW}.",
        ))
    if state.last_error:
        after = f"; the next attempt is at {utc_time(state.next_attempt)}" if state.next_attempt else ""
        return [*out, Finding(
            "certificate.renewal", "certificate", Status.WARN,
            f"The last renewal attempt failed ({state.failures} in a row): {state.last_error}{after}.",
            f"Fix the cause above, then {_RENEW_NOW}.",
        )]
    return [*out, _renewal_due(status.next_renewal, now)]


def _renewal_due(next_renewal: float | None, now: float) -> Finding:
    if next_renewal is None:
        return Finding("certificate.renewal", "certificate", Status.OK, "No renewal is scheduled yet.")
    if next_renewal < now - 86400:
        return Finding(
            "certificate.renewal", "certificate", Status.WARN,
            f"Renewal was due {duration(now - next_renewal)} ago ({utc_time(next_renewal)})"
            " and has not happened: the server renews only while it runs.",
            f"Start the server (`systemctl start dendrite-lite`) or run {_RENEW_NOW}.",
        )
    return Finding("certificate.renewal", "certificate", Status.OK,
                   f"Renewal is due at {utc_time(next_renewal)}.")


def _files_findings(path: Path, names: list[str], now: float) -> list[Finding]:
    cert = _load(path)
    if isinstance(cert, str):
        return [Finding("certificate.file", "certificate", Status.FAIL, f"tls.cert_path {path} {cert}.",
                        "Point tls.cert_path at the PEM certificate chain (fullchain.pem).")]
    renew = "Renew it and replace the file (or switch to tls.mode = \"acme\", which renews by itself), then restart."
    out = [_expiry(cert, f"tls.cert_path {path}", now, renew)]
    missing = [n for n in names if not covers(cert.leaf, n)]
    if missing:
        out.append(Finding(
            "certificate.names", "certificate", Status.FAIL,
            f"tls.cert_path {path} is not valid for {', '.join(missing)}: clients and peers refuse it.",
            f"Get a certificate whose subjectAltName includes {', '.join(missing)}.",
        ))
    elif names:
        out.append(Finding("certificate.names", "certificate", Status.OK,
                           f"tls.cert_path {path} is valid for {', '.join(names)}."))
    return out


def _expiry(cert: CertificateSummary, what: str, now: float, fix: str) -> Finding:
    expires = cert.not_after
    if expires <= now:
        return Finding("certificate.expiry", "certificate", Status.FAIL,
                       f"{what} expired {duration(now - expires)} ago ({utc_time(expires)}).", fix)
    if expires - now < EXPIRY_FAIL_DAYS * 86400:
        return Finding("certificate.expiry", "certificate", Status.FAIL,
                       f"{what} expires in {duration(expires - now)} ({utc_time(expires)}).", fix)
    return Finding("certificate.expiry", "certificate", Status.OK,
                   f"{what} is valid until {utc_time(expires)} ({duration(expires - now)} left).")


def covers(cert: x509.Certificate, name: str) -> bool:
    """Whether the subjectAltName covers `name` (a host or IP; a wildcard covers one label)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        return ip in san.get_values_for_type(x509.IPAddress)
    host = name.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in san.get_values_for_type(x509.DNSName)):
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False
