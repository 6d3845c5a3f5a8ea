"""ACME Renewal Information (tls/ari.py, RFC 9773) against a fake directory (Pebble 2.4 has
none), and what the renewer makes of it."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest
from acme import client as acme_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dendrite_lite.tls import ari
from dendrite_lite.tls.issuer import new_client
from dendrite_lite.tls.manager import CertificateManager
from dendrite_lite.tls.state import (
    CERTIFICATE_FILE,
    KEY_FILE,
    AcmeState,
    load_state,
    save_state,
)
from tests.conftest import make_config
from tests.unit.tls.fake_acme import Answer, FakeAcme, fake_acme  # noqa: F401 (fixture)

# RFC 9773 §4.1's example: this keyIdentifier and serial make this certID.
RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
RFC_SERIAL = 0x0087654321
RFC_CERT_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def leaf(aki: bytes = RFC_AKI, serial: int = RFC_SERIAL) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=89))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("matrix.test")]), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_cert_id_is_rfc_9773s() -> None:
    assert ari.cert_id(leaf()) == RFC_CERT_ID
    # A serial with its top bit set gets a leading zero byte (DER INTEGER), like acme's own.
    high = leaf(serial=0xFF01)
    assert ari.cert_id(high).endswith(".AP8B")
    assert ari.cert_id(high) == acme_client._renewal_info_path_component(high)


def _config(tmp_path: Path, fake: FakeAcme):  # type: ignore[no-untyped-def]
    return make_config(tmp_path, {"tls.mode": "acme", "tls.acme_directory": fake.directory,
                                  "tls.acme_agree_tos": True})


def _window(start: float, end: float) -> dict[str, dict[str, str]]:
    iso = lambda t: datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat().replace("+00:00", "Z")
    return {"suggestedWindow": {"start": iso(start), "end": iso(end)}}


def test_fetch_renewal_info(tmp_path: Path, fake_acme: FakeAcme) -> None:  # noqa: F811
    now = time.time()
    fake_acme.renewal_info[RFC_CERT_ID] = Answer(
        200, _window(now + 86400, now + 2 * 86400), {"Retry-After": "21600"}
    )
    info = ari.fetch_renewal_info(new_client(_config(tmp_path, fake_acme)), leaf())
    assert info is not None
    assert info.window == pytest.approx((now + 86400, now + 2 * 86400))
    assert abs(info.next_check - (now + 21600)) < 5
    assert ("GET", f"/renewal-info/{RFC_CERT_ID}") in fake_acme.requests


def test_retry_after_is_clamped(tmp_path: Path, fake_acme: FakeAcme) -> None:  # noqa: F811
    now = time.time()
    fake_acme.renewal_info[RFC_CERT_ID] = Answer(200, _window(now, now + 10), {"Retry-After": "1"})
    info = ari.fetch_renewal_info(new_client(_config(tmp_path, fake_acme)), leaf())
    assert info is not None and info.next_check >= now + 60


def test_no_renewal_info_in_the_directory(tmp_path: Path, fake_acme: FakeAcme) -> None:  # noqa: F811
    fake_acme.with_ari = False
    assert ari.fetch_renewal_info(new_client(_config(tmp_path, fake_acme)), leaf()) is None


def _install(config, cert: x509.Certificate) -> None:  # type: ignore[no-untyped-def]
    config.acme_dir.mkdir(parents=True)
    (config.acme_dir / CERTIFICATE_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (config.acme_dir / KEY_FILE).write_bytes(b"unused here")


async def test_renewer_renews_inside_the_window(tmp_path: Path, fake_acme: FakeAcme) -> None:  # noqa: F811
    config = _config(tmp_path, fake_acme)
    cert = leaf()
    _install(config, cert)
    now = time.time()
    lifetime_rule = now + 59 * 86400
    save_state(config.acme_dir, AcmeState(names=("matrix.test",), next_renewal=lifetime_rule))
    start, end = now + 3 * 86400, now + 4 * 86400
    fake_acme.renewal_info[RFC_CERT_ID] = Answer(200, _window(start, end), {"Retry-After": "3600"})
    manager = CertificateManager(config, live=None, http01=None, alpn=None)
    await manager.check_renewal_info()
    state = load_state(config.acme_dir)  # saved, for tls status and a restart
    assert state.ari_window == pytest.approx((start, end))
    assert state.next_renewal is not None and start <= state.next_renewal <= end
    assert state.ari_next_check is not None and abs(state.ari_next_check - (now + 3600)) < 5
    # The same window again keeps the time chosen (no new draw at every check).
    chosen = state.next_renewal
    await manager.check_renewal_info()
    assert load_state(config.acme_dir).next_renewal == chosen


async def test_ari_failure_keeps_the_lifetime_rule(
    tmp_path: Path, fake_acme: FakeAcme  # noqa: F811
) -> None:
    config = _config(tmp_path, fake_acme)
    _install(config, leaf())
    now = time.time()
    save_state(config.acme_dir, AcmeState(names=("matrix.test",), next_renewal=now + 1000))
    manager = CertificateManager(config, live=None, http01=None, alpn=None)
    await manager.check_renewal_info()  # the fake answers 404 for an unknown certID
    state = load_state(config.acme_dir)
    assert state.next_renewal == now + 1000
    assert state.ari_next_check is not None and state.ari_next_check >= now + ari.ARI_DEFAULT_RECHECK_S - 5
    assert json.loads((config.acme_dir / "state.json").read_text())["ari_window"] is None
