"""The doctor's LiveKit check (delegation/doctor/livekit_checks.py): a small HTTPS server on
loopback stands in for lk-jwt-service, answering /healthz 200 or 500, and a port nothing
listens on."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from dendrite_lite.config import CallsConfig
from dendrite_lite.delegation.doctor import DoctorNetwork, Finding, Status
from dendrite_lite.delegation.doctor.livekit_checks import livekit_findings
from tests.integration.doctor_helpers import FakePeer, make_cert
from tests.interop.synapse_server import free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

SFU_ERROR = "Element Call will show 'Failed to connect to the SFU'."


@pytest.fixture
async def lk_jwt_service(tmp_path: Path) -> AsyncIterator[tuple[FakePeer, Path, list[int]]]:
    """(the stand-in, its certificate, the status /healthz answers: set [0] to change it)."""
    cert, key = make_cert(tmp_path, "IP:127.0.0.1")
    status = [200]

    async def healthz(peer: FakePeer, request: web.Request) -> web.StreamResponse:
        return web.Response(status=status[0])

    peer = await FakePeer.start(cert, key, {"/healthz": healthz})
    yield peer, cert, status
    await peer.stop()


async def _check(url: str, trust: Path | None = None) -> list[Finding]:
    network = dataclasses.replace(DoctorNetwork.default([str(trust)] if trust else None), timeout_s=3)
    return await livekit_findings(CallsConfig(livekit_service_url=url), network)


async def test_healthy_and_failing_lk_jwt_service(lk_jwt_service: tuple[FakePeer, Path, list[int]]) -> None:
    peer, cert, status = lk_jwt_service
    url = f"https://127.0.0.1:{peer.port}"
    (ok,) = await _check(url + "/", trust=cert)
    assert (ok.check, ok.status, ok.why) == ("calls.livekit", Status.OK, f"lk-jwt-service answers at {url}/healthz.")
    status[0] = 500
    (down,) = await _check(url, trust=cert)
    assert (down.check, down.status) == ("calls.livekit", Status.FAIL)
    assert down.why == f"lk-jwt-service is not healthy at {url}/healthz: it answers HTTP 500; {SFU_ERROR}"
    assert down.fix is not None and f"make the reverse proxy pass {url}/ to it" in down.fix


async def test_nothing_listening(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    (finding,) = await _check(url)
    assert (finding.check, finding.status) == ("calls.livekit", Status.FAIL)
    assert finding.why.startswith(f"lk-jwt-service is not reachable at {url}/healthz (")
    assert finding.why.endswith(SFU_ERROR)


async def test_an_untrusted_certificate_is_unreachable(lk_jwt_service: tuple[FakePeer, Path, list[int]]) -> None:
    url = f"https://127.0.0.1:{lk_jwt_service[0].port}"
    (finding,) = await _check(url)  # the system CAs only, as a browser's
    assert finding.status is Status.FAIL and finding.why.startswith(f"lk-jwt-service is not reachable at {url}/healthz (")
    assert "certificate" in finding.why


async def test_an_http_url_warns() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    https, health = await _check(url)
    assert (https.check, https.status) == ("calls.livekit_https", Status.WARN)
    assert https.why.startswith(f"calls.livekit_service_url {url} is not https: Element Call in a browser")
    assert (health.check, health.status) == ("calls.livekit", Status.FAIL)


async def test_no_sfu_configured_is_said_without_failing() -> None:
    (finding,) = await _check("")
    assert (finding.check, finding.status) == ("calls.livekit", Status.OK)
    assert 'see the README, "Calls (Element Call / MatrixRTC)"' in finding.why
