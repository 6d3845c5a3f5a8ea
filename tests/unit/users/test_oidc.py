"""The pure parts of OpenID Connect sign-in (users/oidc.py): the localpart a claim maps to, the
required claims, the provider's callback errors, and the pending sign-ins (single use, ten
minutes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dendrite_lite.config import OidcProviderConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.users.oidc import (
    PENDING_LIFETIME_S,
    OidcProvider,
    OidcService,
    OidcSetupError,
    PendingSignIn,
    check_claims,
    localpart_of,
    provider_error,
)


def test_localpart_from_the_claim() -> None:
    assert localpart_of({"preferred_username": " Alice "}, "preferred_username") == "alice"
    assert localpart_of({"u": "jöe smith"}, "u") == "j=c3=b6e=20smith"
    for claims in ({}, {"u": ""}, {"u": 42}, {"u": ["a"]}):
        with pytest.raises(MatrixError) as e:
            localpart_of(claims, "u")
        assert (e.value.status, e.value.errcode) == (403, "M_FORBIDDEN")
        assert "'u'" in e.value.error


def test_required_claims() -> None:
    claims = {"sub": "1", "groups": ["family", "admins"], "org": "home", "level": 3}
    check_claims(claims, {})
    check_claims(claims, {"groups": "family", "org": "home"})
    for required in ({"groups": "strangers"}, {"org": "work"}, {"missing": "x"}, {"level": "3"}):
        with pytest.raises(MatrixError) as e:
            check_claims(claims, required)
        assert e.value.status == 403


def test_provider_errors() -> None:
    refused = provider_error("Authelia", "access_denied", "User said no")
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    assert refused.error == "Authelia did not let you sign in (access_denied: User said no)"
    broken = provider_error("Authelia", "server_error", "")
    assert broken.status == 502 and "(server_error)" in broken.error
    assert len(provider_error("X", "e" * 5000, "d" * 5000).error) < 400


def _service(clock: list[float]) -> OidcService:
    config = OidcProviderConfig(idp_id="op", idp_name="OP", issuer="https://op.example", client_id="c")
    return OidcService((config,), public_baseurl="https://m.example/", server_name="m.example",
                       clock=lambda: clock[0])


def test_pending_sign_ins_are_single_use_and_expire() -> None:
    clock = [1000.0]
    svc = _service(clock)
    assert svc.callback_url == "https://m.example/_dendrite_lite/client/oidc/callback"
    pending = PendingSignIn("op", "n", "v", "https://app.example/", None, clock[0] + PENDING_LIFETIME_S)
    svc._pending["s1"] = pending
    svc._pending["s2"] = pending
    assert svc.take("s1") is pending
    with pytest.raises(MatrixError) as e:
        svc.take("s1")
    assert e.value.status == 400
    clock[0] += PENDING_LIFETIME_S
    with pytest.raises(MatrixError):
        svc.take("s2")


def test_unreadable_files_stop_the_start_naming_the_key(tmp_path: Path) -> None:
    base = OidcProviderConfig(idp_id="op", idp_name="OP", issuer="https://op.example", client_id="c")
    for key in ("client_secret_file", "ca_file"):
        config = dataclasses.replace(base, **{key: tmp_path / "missing"})
        with pytest.raises(OidcSetupError, match=rf"^oidc_providers \(idp_id 'op'\)\.{key}: "):
            OidcService((config,), public_baseurl="https://m.example/", server_name="m.example")
    (tmp_path / "secret").write_text("s3cret\n")
    (tmp_path / "bad.pem").write_text("not a certificate")
    config = dataclasses.replace(base, client_secret_file=tmp_path / "secret")
    assert OidcProvider(config, "https://m.example/cb")._secret == "s3cret"
    with pytest.raises(OidcSetupError, match=r"\.ca_file: "):
        OidcProvider(dataclasses.replace(base, ca_file=tmp_path / "bad.pem"), "https://m.example/cb")
