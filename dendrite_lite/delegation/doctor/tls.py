"""A/AAAA of each target and a TLS handshake per address, as a peer would make it.

The handshake uses the doctor's trust (system CAs plus --ca-file) and sends the name the
certificate must be valid for as SNI (none for an IP, spec §TLS); Python's ssl module checks
the chain, the names and the dates, and its verify code says which one failed.
"""

from __future__ import annotations

import asyncio
import ssl

from dendrite_lite.delegation.discovery import (
    Resolution,
    Target,
    is_ip_literal,
    split_server_name,
)
from dendrite_lite.delegation.doctor.findings import Finding, Status, utc_time
from dendrite_lite.delegation.doctor.network import Address, DoctorNetwork

__all__ = ["EXPIRY_WARN_DAYS", "address_findings", "tls_findings"]

EXPIRY_WARN_DAYS = 14
# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h.in).
_NOT_YET_VALID, _EXPIRED = 9, 10
_NAME_MISMATCH = frozenset({62, 64})  # hostname, IP address


def _netloc(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def address_findings(
    resolution: Resolution, network: DoctorNetwork
) -> tuple[list[Finding], list[tuple[Target, Address]]]:
    """Findings on A/AAAA of every target, and the (target, address) pairs to connect to."""
    findings: list[Finding] = []
    pairs: list[tuple[Target, Address]] = []
    for target in resolution.targets:
        try:
            addresses = await network.addresses(target.host, target.port)
        except (TimeoutError, OSError) as e:
            findings.append(Finding(
                "dns.addresses", "dns", Status.FAIL,
                f"{target.host} has no A or AAAA record ({e}).",
                f"Publish the address of your server: `{target.host}. 3600 IN A <IPv4 address>`"
                f" (and/or `{target.host}. 3600 IN AAAA <IPv6 address>`).",
            ))
            continue
        if is_ip_literal(target.host):
            why = f"{target.netloc} is an IP literal."
        else:
            why = f"{target.netloc} resolves to {', '.join(_netloc(a) for a in addresses)}."
        findings.append(Finding("dns.addresses", "dns", Status.OK, why))
        pairs += [(target, a) for a in addresses]
    return findings, pairs


async def tls_findings(resolution: Resolution, target: Target, address: Address, network: DoctorNetwork) -> list[Finding]:
    where = f"{_netloc(address)} ({target.netloc})" if address[0] != target.host else target.netloc
    name = resolution.tls_name
    writer = None
    try:
        _, writer = await asyncio.wait_for(
            # server_hostname: Python sends it as SNI unless it is an IP, and checks the
            # certificate against it either way.
            asyncio.open_connection(address[0], address[1], ssl=network.ssl_context, server_hostname=name),
            network.timeout_s,
        )
        cert = writer.get_extra_info("peercert") or {}
    except ssl.SSLCertVerificationError as e:
        return [_verify_failure(e, where, name)]
    except ssl.SSLError as e:
        return [Finding(
            "tls.handshake", "tls", Status.FAIL, f"{where}: TLS handshake failed ({e.reason or e}).",
            "Serve HTTPS (TLS 1.2 or newer) on this port: tls.mode = \"files\" or \"acme\", or a"
            " reverse proxy terminating TLS in front of the federation listener.",
        )]
    except (TimeoutError, OSError) as e:
        return [Finding(
            "tls.connect", "tls", Status.FAIL,
            f"{where}: cannot connect ({type(e).__name__}: {e}).", _connect_fix(resolution, address[1]),
        )]
    finally:
        if writer is not None:
            # abort, not close: nothing was sent, so there is no close_notify worth waiting for.
            writer.transport.abort()
    issuer = _name_of(cert.get("issuer", ()))
    out = [
        Finding("tls.chain", "tls", Status.OK, f"{where}: the certificate chain is trusted (issuer {issuer})."),
        Finding("tls.name", "tls", Status.OK, f"{where}: the certificate is valid for {name}."),
    ]
    not_after = cert.get("notAfter")
    if isinstance(not_after, str):
        out.append(_expiry_finding(where, ssl.cert_time_to_seconds(not_after), network.clock()))
    return out


def _connect_fix(resolution: Resolution, port: int) -> str:
    fix = (
        f"Make the federation listener reachable on port {port} (listen.federation, and the"
        " firewall / port forwarding)"
    )
    steps = {s.step: s for s in resolution.steps}
    host, _ = split_server_name(resolution.server_name)
    if steps.get("well_known") is not None and steps["well_known"].outcome == "used":
        return (
            f"{fix}; or, if federation listens elsewhere, correct m.server in"
            f" https://{host}/.well-known/matrix/server ({steps['well_known'].detail}): it must"
            " name the host and port of the federation listener."
        )
    if resolution.steps[-1].step != "default":
        return fix + "."
    # Nothing told peers where federation is: port 8448 was a guess, and maybe not the setup.
    return (
        f"{fix}; or, if federation listens elsewhere, tell peers where: an SRV record"
        f" `_matrix-fed._tcp.{host}. 3600 IN SRV 10 0 <port> <host of the server>.` or"
        f' https://{host}/.well-known/matrix/server with {{"m.server": "<host>:<port>"}}.'
    )


def _expiry_finding(where: str, expires: float, now: float) -> Finding:
    days = (expires - now) / 86400
    when = utc_time(expires)
    if days < EXPIRY_WARN_DAYS:
        return Finding(
            "tls.expiry", "tls", Status.WARN, f"{where}: the certificate expires in {days:.1f} days ({when}).",
            "Renew the certificate now (tls.mode = \"acme\" renews by itself; with tls.mode ="
            " \"files\" replace tls.cert_path and restart).",
        )
    return Finding("tls.expiry", "tls", Status.OK, f"{where}: the certificate is valid until {when}.")


def _verify_failure(e: ssl.SSLCertVerificationError, where: str, name: str) -> Finding:
    message = (e.verify_message or str(e)).rstrip(".")
    if e.verify_code in (_EXPIRED, _NOT_YET_VALID):
        return Finding(
            "tls.expiry", "tls", Status.FAIL, f"{where}: {message}; peers refuse to connect.",
            "Renew the certificate (tls.mode = \"acme\" renews by itself; with tls.mode = \"files\""
            " replace tls.cert_path and restart), and check the server's clock.",
        )
    if e.verify_code in _NAME_MISMATCH:
        kind = "IP address" if is_ip_literal(name) else "DNS name"
        return Finding(
            "tls.name", "tls", Status.FAIL, f"{where}: {message}.",
            f"Get a certificate whose subjectAltName includes the {kind} {name}: that is the name"
            " peers check, the server name or its delegated name (spec §Resolving server names).",
        )
    return Finding(
        "tls.chain", "tls", Status.FAIL, f"{where}: the certificate is not trusted ({message}).",
        "Use a certificate from a CA peers trust (Let's Encrypt: tls.mode = \"acme\") and serve the"
        " full chain: tls.cert_path must hold your certificate followed by the intermediates"
        " (fullchain.pem, not cert.pem).",
    )


def _name_of(rdns: object) -> str:
    # getpeercert(): ((("commonName", "R3"),), (("organizationName", "..."),), ...)
    parts = {}
    for rdn in rdns if isinstance(rdns, tuple) else ():
        for key, value in rdn:
            parts[key] = value
    return parts.get("commonName") or parts.get("organizationName") or "unknown"
