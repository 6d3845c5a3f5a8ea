"""`dendrite-lite doctor` on [[oidc_providers]] (delegation/doctor/oidc_checks.py), against the
real OpenID Provider of the sign-in tests (tests/interop/oidc_peer.py): a working provider, a
wrong issuer, an untrusted certificate, a provider that is down, an unreadable secret file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dendrite_lite.config import Config, OidcProviderConfig
from dendrite_lite.delegation.doctor.findings import Status
from dendrite_lite.delegation.doctor.oidc_checks import oidc_findings
from tests.interop.oidc_peer import OidcPeer, oidc_peer
from tests.interop.synapse_server import free_port

__all__ = ["oidc_peer"]  # the session fixture, used here


async def test_oidc_findings(oidc_peer: OidcPeer, tmp_path: Path) -> None:
    good = OidcProviderConfig(idp_id="op", idp_name="Family login", issuer=oidc_peer.issuer,
                              client_id="dendrite", ca_file=oidc_peer.ca_file)
    providers = (
        good,
        dataclasses.replace(good, idp_id="realm", issuer=oidc_peer.issuer + "/realms/x"),
        dataclasses.replace(good, idp_id="untrusted", ca_file=None),
        dataclasses.replace(good, idp_id="down", issuer=f"https://127.0.0.1:{free_port()}"),
        dataclasses.replace(good, idp_id="nofile", client_secret_file=tmp_path / "missing"),
    )
    assert await oidc_findings(Config()) == []
    found = await oidc_findings(Config(oidc_providers=providers))
    assert [(f.check, f.area, f.status) for f in found] == [
        ("sso.oidc.op", "sso", Status.OK),
        ("sso.oidc.realm", "sso", Status.FAIL),
        ("sso.oidc.untrusted", "sso", Status.FAIL),
        ("sso.oidc.down", "sso", Status.FAIL),
        ("sso.oidc.nofile", "sso", Status.FAIL),
    ]
    ok, realm, untrusted, down, nofile = found
    assert "signing key(s)" in ok.why
    assert "https://localhost/_dendrite_lite/client/oidc/callback" in ok.why
    assert "answered HTTP 404" in realm.why and "/realms/<realm>" in (realm.fix or "")
    assert "could not be fetched" in untrusted.why and "ca_file" in (untrusted.fix or "")
    assert "could not be fetched" in down.why
    assert "client_secret_file" in nofile.why
