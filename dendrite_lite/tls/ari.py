"""ACME Renewal Information (ARI, RFC 9773): when the CA would like a certificate renewed.

A directory that offers it has a "renewalInfo" URL; GET <renewalInfo>/<certID> (certID =
base64url(AKI keyIdentifier) "." base64url(DER serial), RFC 9773 §4.1) answers a
`suggestedWindow`, and its Retry-After says when to ask again. Synchronous (acme's network
layer, requests): run it in a worker thread.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from acme import client as acme_client
from acme import messages
from cryptography import x509

from dendrite_lite.tls.renewal import parse_retry_after

__all__ = ["ARI_DEFAULT_RECHECK_S", "RenewalInfo", "cert_id", "fetch_renewal_info"]

# RFC 9773 §4.3: without a Retry-After, ask again in six hours; a Retry-After is clamped so a
# CA mistake cannot make us poll every second or never again.
ARI_DEFAULT_RECHECK_S = 6 * 3600.0
_RECHECK_MIN_S = 60.0
_RECHECK_MAX_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class RenewalInfo:
    window: tuple[float, float]  # suggestedWindow (start, end), Unix seconds
    next_check: float  # when to ask again


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def cert_id(cert: x509.Certificate) -> str:
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise ValueError("the certificate's Authority Key Identifier has no keyIdentifier")
    serial = cert.serial_number
    # DER INTEGER content: big-endian two's complement, a leading zero when the top bit is set.
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{_b64(aki.key_identifier)}.{_b64(serial_der)}"


def fetch_renewal_info(
    client: acme_client.ClientV2, cert: x509.Certificate
) -> RenewalInfo | None:
    """The CA's suggested window for `cert`; None when its directory offers no ARI. Raises
    what acme/requests raise when the CA cannot be asked."""
    try:
        base = client.directory["renewalInfo"]
    except KeyError:
        return None
    response = client.net.get(f"{str(base).rstrip('/')}/{cert_id(cert)}")
    info = messages.RenewalInfo.from_json(response.json())
    window = info.suggested_window
    now = time.time()
    retry = parse_retry_after(response.headers.get("Retry-After", ""), now)
    wait = ARI_DEFAULT_RECHECK_S if retry is None else retry - now
    return RenewalInfo(
        window=(window.start.timestamp(), window.end.timestamp()),
        next_check=now + min(max(wait, _RECHECK_MIN_S), _RECHECK_MAX_S),
    )
