"""The doctor's TURN checks (delegation/doctor/turn_checks.py) against a real coturn on
loopback: an allocation with the credentials GET /voip/turnServer hands out (UDP and TCP), a
wrong shared secret or static pair (coturn's 401), a port nothing answers on, a name that does
not resolve, a URI that is not one, and no TURN server at all."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dendrite_lite.config import TurnConfig
from dendrite_lite.delegation.doctor import DoctorNetwork, Finding, Status
from dendrite_lite.delegation.doctor.turn_checks import turn_findings
from tests.interop.coturn import SECRET, coturn, coturn_tls  # noqa: F401 (fixtures)
from tests.interop.synapse_server import free_port

SERVER = "example.org"


async def _check(turn: TurnConfig, timeout_s: float = 5.0, trust: Path | None = None) -> list[Finding]:
    network = dataclasses.replace(DoctorNetwork.default([str(trust)] if trust else None), timeout_s=timeout_s)
    return await turn_findings(turn, SERVER, network)


async def test_allocation_with_our_credentials_over_udp_and_tcp(coturn: tuple[int, int]) -> None:  # noqa: F811
    port = coturn[0]
    uris = (f"turn:127.0.0.1:{port}?transport=udp", f"turn:127.0.0.1:{port}?transport=tcp")
    findings = await _check(TurnConfig(uris=uris, shared_secret=SECRET))
    assert [(f.check, f.status) for f in findings] == [("calls.turn_allocation", Status.OK)] * 2
    for uri, finding in zip(uris, findings, strict=True):
        assert finding.why.startswith(f"TURN server 127.0.0.1:{port} ({uri}) at 127.0.0.1 gave a relay address (127.0.0.1:")
        assert "credentials made as GET /voip/turnServer makes them" in finding.why


async def test_a_wrong_shared_secret_is_refused_with_401(coturn: tuple[int, int]) -> None:  # noqa: F811
    uri = f"turn:127.0.0.1:{coturn[0]}"
    (finding,) = await _check(TurnConfig(uris=(uri,), shared_secret="not-" + SECRET))
    assert (finding.check, finding.status) == ("calls.turn_allocation", Status.FAIL)
    assert finding.why == f"TURN server 127.0.0.1:{coturn[0]} ({uri}) at 127.0.0.1 refused our credentials (401 Unauthorized)."
    assert finding.fix is not None
    assert finding.fix.startswith("static-auth-secret in turnserver.conf must equal [turn] shared_secret")


async def test_a_static_pair_coturn_does_not_know_is_refused(coturn: tuple[int, int]) -> None:  # noqa: F811
    uri = f"turn:127.0.0.1:{coturn[0]}?transport=tcp"
    (finding,) = await _check(TurnConfig(uris=(uri,), username="alice", password="wonderland"))
    assert finding.status is Status.FAIL and "refused our credentials (401 Unauthorized)" in finding.why
    assert finding.fix is not None and finding.fix.startswith("turnserver.conf must list the static pair as `user=alice:")


async def test_nothing_answering_is_unreachable() -> None:
    port = free_port()
    udp, tcp = f"turn:127.0.0.1:{port}", f"turn:127.0.0.1:{port}?transport=tcp"
    silent, refused = await _check(TurnConfig(uris=(udp, tcp), shared_secret=SECRET), timeout_s=2.0)
    assert (silent.check, silent.status) == ("calls.turn_reachable", Status.FAIL)
    assert silent.why == (
        f"TURN server 127.0.0.1:{port} ({udp}) at 127.0.0.1 did not answer a TURN request over UDP: no answer within 2 s."
    )
    assert silent.fix is not None and silent.fix.startswith(f"Open UDP port {port} on the TURN host's firewall (`ufw allow {port}/udp`)")
    assert (refused.check, refused.status) == ("calls.turn_reachable", Status.FAIL)
    assert refused.why == f"TURN server 127.0.0.1:{port} ({tcp}) at 127.0.0.1: cannot connect over TCP: Connection refused."
    assert refused.fix is not None and refused.fix.startswith(f"Open TCP port {port} on the TURN host's firewall")


async def test_turns_allocates_over_tls(coturn_tls: tuple[int, Path]) -> None:  # noqa: F811
    port, cert = coturn_tls
    uri = f"turns:127.0.0.1:{port}"
    (finding,) = await _check(TurnConfig(uris=(uri,), shared_secret=SECRET), trust=cert)
    assert (finding.check, finding.status) == ("calls.turn_allocation", Status.OK), finding
    assert finding.why.startswith(f"TURN server 127.0.0.1:{port} ({uri}) at 127.0.0.1 gave a relay address")


async def test_turns_with_a_certificate_clients_do_not_trust(coturn_tls: tuple[int, Path]) -> None:  # noqa: F811
    uri = f"turns:127.0.0.1:{coturn_tls[0]}"
    (finding,) = await _check(TurnConfig(uris=(uri,), shared_secret=SECRET))
    assert (finding.check, finding.status) == ("calls.turn_tls", Status.FAIL)
    assert finding.why == (
        f"TURN server 127.0.0.1:{coturn_tls[0]} ({uri}) at 127.0.0.1: the TLS handshake failed: self-signed certificate."
    )
    assert finding.fix is not None and "with a certificate valid for 127.0.0.1 from a public CA" in finding.fix


async def test_turns_on_a_port_without_tls(coturn: tuple[int, int]) -> None:  # noqa: F811
    # The plain listening-port answers TURN over TCP; a TLS ClientHello gets no TLS answer.
    uri = f"turns:127.0.0.1:{coturn[0]}"
    (finding,) = await _check(TurnConfig(uris=(uri,), shared_secret=SECRET), timeout_s=2.0)
    assert (finding.check, finding.status) == ("calls.turn_tls", Status.FAIL)
    assert finding.why.startswith(f"TURN server 127.0.0.1:{coturn[0]} ({uri}) at 127.0.0.1: the TLS handshake failed: ")
    assert finding.fix is not None and finding.fix.startswith(f"Check that port {coturn[0]} is coturn's tls-listening-port")


@pytest.mark.parametrize(
    ("uri", "check", "why"),
    [
        ("turn:no-such-host.invalid:3478", "calls.turn_dns",
         "TURN server no-such-host.invalid:3478 (turn:no-such-host.invalid:3478): no-such-host.invalid does not resolve"),
        ("stun:127.0.0.1:3478", "calls.turn_uri",
         "turn.uris[0] 'stun:127.0.0.1:3478' is not a TURN URI: it does not start with turn: or turns:."),
    ],
)
async def test_a_name_that_does_not_resolve_or_a_uri_that_is_not_one(uri: str, check: str, why: str) -> None:
    (finding,) = await _check(TurnConfig(uris=(uri,), shared_secret=SECRET))
    assert (finding.check, finding.status) == (check, Status.FAIL)
    assert finding.why.startswith(why)


async def test_no_turn_server_is_said_without_failing() -> None:
    (finding,) = await _check(TurnConfig())
    assert (finding.check, finding.status) == ("calls.turn", Status.OK)
    assert "calls between phones or computers on different networks will often fail" in finding.why
    assert 'README, "Voice and video calls (TURN)"' in finding.why
