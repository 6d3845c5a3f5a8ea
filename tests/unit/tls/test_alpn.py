"""TLS-ALPN-01 (tls/alpn.py): the challenge type registered with acme, the challenge
certificate, and the SNI switch on a live context, on both event loops the server runs on."""

from __future__ import annotations

import asyncio
import hashlib
import ssl

import josepy as jose
import pytest
from acme import challenges
from cryptography import x509

from dendrite_lite.event_loop import new_event_loop
from dendrite_lite.tls.alpn import (
    ACME_IDENTIFIER_OID,
    ACME_TLS_ALPN,
    TLSALPN01,
    TLSALPN01Response,
    TlsAlpnAnswers,
    challenge_certificate,
    context_from_pem,
)
from dendrite_lite.tls.certs import new_key, self_signed

KEY_AUTHORIZATION = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


def test_challenge_certificate() -> None:
    cert_pem, key_pem = challenge_certificate("matrix.test", KEY_AUTHORIZATION)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert ext.critical
    # RFC 8737 §3: the DER encoding of an OCTET STRING holding SHA-256(key authorization).
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["matrix.test"]
    assert san.critical  # the subject is empty
    assert cert.subject == x509.Name([])
    context_from_pem(cert_pem, key_pem)  # the key matches the certificate


def test_tls_alpn_01_is_registered_with_acme() -> None:
    token = b"\x01" * 32
    chall = challenges.Challenge.from_json(
        {"type": "tls-alpn-01", "token": jose.b64encode(token).decode()}
    )
    assert isinstance(chall, TLSALPN01)
    key = jose.JWKEC(key=new_key())
    response, validation = chall.response_and_validation(key)
    assert isinstance(response, TLSALPN01Response)
    assert validation == chall.key_authorization(key)
    assert response.to_partial_json() == {}  # what RFC 8555 §8.3 posts, as for http-01
    parsed = challenges.ChallengeResponse.from_json(
        {"type": "tls-alpn-01", "keyAuthorization": validation}
    )
    assert isinstance(parsed, TLSALPN01Response)
    assert response.verify(chall, key.public_key())


def _served(
    port: int, name: str, alpn: list[str]
) -> tuple[x509.Certificate, str | None]:
    async def handshake() -> tuple[x509.Certificate, str | None]:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.set_alpn_protocols(alpn)
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                                  server_hostname=name)
        sslobj = writer.get_extra_info("ssl_object")
        der, chosen = sslobj.getpeercert(binary_form=True), sslobj.selected_alpn_protocol()
        writer.close()
        return x509.load_der_x509_certificate(der), chosen
    return asyncio.run(handshake())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_sni_callback_answers_the_challenge_on_both_loops(loop_kind: str) -> None:
    """The server's live context answers a pending challenge for its name, and keeps serving
    its own certificate (and HTTP ALPN) to other names and after the challenge is removed."""
    live = context_from_pem(*self_signed(["matrix.test", "other.test"]))
    live.set_alpn_protocols(["h2", "http/1.1"])
    answers = TlsAlpnAnswers()
    answers.install(live)
    answers.put("Matrix.Test", KEY_AUTHORIZATION)  # names compare case-insensitively
    results: dict[str, tuple[x509.Certificate, str | None]] = {}

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(
            asyncio.Protocol, "127.0.0.1", 0, ssl=live
        )
        port = server.sockets[0].getsockname()[1]
        for label, name, alpn in (
            ("challenge", "matrix.test", [ACME_TLS_ALPN]),
            ("other", "other.test", ["h2", "http/1.1"]),
        ):
            results[label] = await asyncio.to_thread(_served, port, name, alpn)
        answers.remove("matrix.test")
        results["after"] = await asyncio.to_thread(_served, port, "matrix.test", ["http/1.1"])
        server.close()
        await server.wait_closed()

    with asyncio.Runner(loop_factory=lambda: new_event_loop(loop_kind)) as runner:
        runner.run(serve())
    cert, chosen = results["challenge"]
    assert chosen == ACME_TLS_ALPN
    ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert ext.value.value[2:] == hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()
    for label in ("other", "after"):
        cert, chosen = results[label]
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
        assert chosen in ("h2", "http/1.1")
    assert answers.pending() == ()
