"""TLS-ALPN-01 (RFC 8737): the challenge type, its certificate, and answering it on the live TLS
listeners through the context's `sni_callback`.

acme 5.x dropped its TLS-ALPN-01 classes, so the challenge and response types are registered
here; importing this module is what lets `acme` parse a "tls-alpn-01" challenge from an order.

How a validation is answered: the CA connects to port 443 of the name with SNI = the name and
ALPN = "acme-tls/1", and expects a self-signed certificate for that name carrying the critical
acmeIdentifier extension (the SHA-256 of the key authorization). Python exposes no ALPN-select
callback in which to pick a certificate by the offered protocol, only the SNI callback; so while
a challenge for a name is pending (the seconds of validation), EVERY handshake naming it gets the
challenge context (its certificate, ALPN "acme-tls/1" only). A client connecting to that name
during those seconds sees the challenge certificate and fails its handshake; other names, and
connections made before, are not affected. The challenge is removed as soon as the CA answered.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from typing import Any

import josepy as jose
from acme import challenges
from cryptography import x509

from dendrite_lite.tls.certs import self_signed

__all__ = [
    "ACME_IDENTIFIER_OID",
    "ACME_TLS_ALPN",
    "TLSALPN01",
    "TLSALPN01Response",
    "TlsAlpnAnswers",
    "challenge_certificate",
    "context_from_pem",
    "pem_files",
]

ACME_TLS_ALPN = "acme-tls/1"
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """ACME tls-alpn-01 challenge response (an empty JSON object, like HTTP-01's)."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """ACME tls-alpn-01 challenge; its validation is the key authorization, which
    `challenge_certificate` turns into the certificate to serve."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.JWK, **unused_kwargs: Any) -> str:
        return self.key_authorization(account_key)


def challenge_certificate(name: str, key_authorization: str) -> tuple[bytes, bytes]:
    """The self-signed certificate (PEM) and key (PEM) answering a tls-alpn-01 challenge for
    `name`: SAN = the name (critical: the subject is empty), and the critical acmeIdentifier
    extension whose value is the DER OCTET STRING of SHA-256(key authorization) (RFC 8737 §3)."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    identifier = x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest)
    return self_signed([name], extensions=[(identifier, True)], san_critical=True)


@contextlib.contextmanager
def pem_files(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[str, str]]:
    """Paths to a certificate and key held in memory: OpenSSL through `ssl` loads only from
    files. They live for the `with`, 0600, in a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="dendrite-lite-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        yield cert_path, key_path


def context_from_pem(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving a certificate held in memory."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with pem_files(cert_pem, key_pem) as (cert_path, key_path):
        context.load_cert_chain(cert_path, key_path)
    return context


class TlsAlpnAnswers:
    """The tls-alpn-01 challenges in flight, by name. `install` makes a live TLS context answer
    them; the issuer (in a worker thread) puts and removes them: single dict operations, atomic
    under the GIL, so the callback on the event loop never sees a half-made entry."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    def put(self, name: str, key_authorization: str) -> None:
        context = context_from_pem(*challenge_certificate(name, key_authorization))
        context.set_alpn_protocols([ACME_TLS_ALPN])
        self._contexts[name.lower()] = context

    def remove(self, name: str) -> None:
        self._contexts.pop(name.lower(), None)

    def pending(self) -> tuple[str, ...]:
        return tuple(self._contexts)

    def install(self, live: ssl.SSLContext) -> None:
        """Answer pending challenges on every listener serving `live` (one SNI callback per
        context: the listeners' shared context has no other)."""
        live.sni_callback = self._select

    def _select(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if server_name is None:
            return
        challenge = self._contexts.get(server_name.lower())
        if challenge is not None:
            # Switching the connection's context before the server hello also switches the
            # ALPN choice to the challenge context's ("acme-tls/1" only).
            conn.context = challenge
        return
