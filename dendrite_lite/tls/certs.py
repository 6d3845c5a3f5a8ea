"""Certificates made and read here: self-signed ones (the tls-alpn-01 answer, and the stand-in
the TLS listeners serve until ACME got a certificate), new keys, and what state.json records
of an issued chain."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["CertificateSummary", "key_pem", "new_key", "self_signed", "summarize"]


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed(
    names: Sequence[str],
    *,
    days: int = 7,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    san_critical: bool = False,
) -> tuple[bytes, bytes]:
    """A self-signed certificate (PEM) for `names` and its new key (PEM). The subject is empty
    and the names are in the SAN only (a CN is limited to 64 characters), so the SAN is
    critical when asked (RFC 5280 §4.2.1.6)."""
    key = new_key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=san_critical
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    names: tuple[str, ...]
    issuer: str
    not_before: float
    not_after: float
    leaf: x509.Certificate


def summarize(fullchain_pem: bytes) -> CertificateSummary:
    """The leaf of a PEM chain: its DNS names, issuer and validity."""
    leaf = x509.load_pem_x509_certificates(fullchain_pem)[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertificateSummary(
        names=names,
        issuer=leaf.issuer.rfc4514_string(),
        not_before=leaf.not_valid_before_utc.timestamp(),
        not_after=leaf.not_valid_after_utc.timestamp(),
        leaf=leaf,
    )
