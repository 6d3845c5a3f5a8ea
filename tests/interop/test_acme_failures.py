"""ACME failures through a real server: the challenge unreachable, the directory down, a
rate-limited answer. Each backs off in hours (persisted in state.json, kept by a restart), is
logged with its reason in one line, and the server keeps serving: its current certificate, or,
with none yet, a temporary self-signed one and the port-80 listener, saying why TLS is not up."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import launch
from tests.interop.pebble import (  # noqa: F401 (pebble is a fixture)
    Pebble,
    acme_overrides,
    connect_tls,
    dns_names,
    free_port,
    pebble,
    relaunch,
    wait_for_state,
)
from tests.unit.tls.fake_acme import Answer, FakeAcme, fake_acme  # noqa: F401 (fixture)

HOUR = 3600.0


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_challenge_unreachable(
    pebble: Pebble, tmp_path: Path, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    name = "unreachable.matrix.test"
    pebble.add_name(name, "127.0.0.2")  # nothing listens there
    overrides = acme_overrides(pebble, name)
    srv = await launch(tmp_path, overrides)
    try:
        state = await wait_for_state(srv.config.acme_dir, lambda s: s.failures > 0)
        assert state.failures == 1
        assert state.next_attempt == pytest.approx(time.time() + HOUR, abs=30)
        assert state.last_error.startswith(f"the CA could not validate {name} by http-01: ")
        assert "127.0.0.2" in state.last_error and "\n" not in state.last_error
        errors = _errors(caplog)
        assert f"ACME: could not get a certificate for {name}: {state.last_error}; next attempt at " in errors[-2]
        assert errors[-1].startswith(f"TLS is not up: {state.last_error} (serving a temporary")
        # Still serving: the TLS listeners with a temporary certificate, the port-80 listener.
        conn = await connect_tls(srv.listening.federation[1], name, None)  # type: ignore[index]
        assert dns_names(conn.certificate) == [name]
        assert await conn.get("/_matrix/federation/v1/version", name) == 200
        await conn.close()
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"http://127.0.0.1:{pebble.http_port}/.well-known/matrix/server")
        assert resp.status_code == 200
    finally:
        await srv.stop()

    # A restart keeps the back-off (no new attempt), and says why TLS is not up.
    caplog.clear()
    srv = await relaunch(tmp_path, overrides)
    try:
        await asyncio.sleep(0.5)
        again = await wait_for_state(srv.config.acme_dir, lambda s: True)
        assert (again.failures, again.last_attempt) == (1, state.last_attempt)
        assert _errors(caplog)[0].startswith(
            f"TLS is not up: no certificate from {pebble.directory} yet; the last attempt failed:"
            f" {state.last_error} (serving a temporary self-signed certificate for {name})"
        )
    finally:
        await srv.stop()


async def test_failed_renewal_keeps_serving_the_current_certificate(
    pebble: Pebble, tmp_path: Path  # noqa: F811
) -> None:
    pebble.add_name("kept.matrix.test")
    pebble.add_name("unreachable.kept.test", "127.0.0.2")
    srv = await launch(tmp_path, acme_overrides(pebble, "kept.matrix.test"))
    first = await wait_for_state(srv.config.acme_dir, lambda s: s.last_success is not None)
    await srv.stop()
    # A name added that the CA cannot validate: the reissue fails.
    srv = await relaunch(tmp_path, acme_overrides(pebble, "kept.matrix.test",
                                                  "unreachable.kept.test"))
    try:
        state = await wait_for_state(srv.config.acme_dir, lambda s: s.failures > 0)
        assert state.last_success == first.last_success and state.names == ("kept.matrix.test",)
        conn = await connect_tls(srv.listening.federation[1], "kept.matrix.test",  # type: ignore[index]
                                 pebble.root_pem())
        assert dns_names(conn.certificate) == ["kept.matrix.test"]
        await conn.close()
    finally:
        await srv.stop()


async def test_directory_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = f"https://127.0.0.1:{free_port()}/dir"
    srv = await launch(tmp_path, {
        "tls.mode": "acme", "tls.acme_directory": directory, "tls.acme_agree_tos": True,
        "tls.acme_names": ("down.matrix.test",), "listen.acme_http": "127.0.0.1:0",
    })
    try:
        state = await wait_for_state(srv.config.acme_dir, lambda s: s.failures > 0)
        assert state.last_error == f"cannot reach the ACME directory {directory}: Connection refused"
        assert state.next_attempt == pytest.approx(time.time() + HOUR, abs=30)
        assert any(e.startswith("ACME: could not get a certificate for down.matrix.test: cannot "
                                "reach the ACME directory") for e in _errors(caplog))
        # Serving meanwhile, with the temporary certificate.
        conn = await connect_tls(srv.listening.client[1], "down.matrix.test", None)
        assert dns_names(conn.certificate) == ["down.matrix.test"]
        assert await conn.get("/_matrix/federation/v1/version", "down.matrix.test") == 200
        await conn.close()
    finally:
        await srv.stop()


async def test_rate_limited(
    tmp_path: Path, fake_acme: FakeAcme, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    fake_acme.new_account = Answer(
        429,
        {"type": "urn:ietf:params:acme:error:rateLimited",
         "detail": "too many certificates already issued for this exact set of names"},
        {"Retry-After": str(int(5 * HOUR))},
    )
    srv = await launch(tmp_path, {
        "tls.mode": "acme", "tls.acme_directory": fake_acme.directory,
        "tls.acme_agree_tos": True, "tls.acme_names": ("limited.matrix.test",),
        "listen.acme_http": "127.0.0.1:0",
    })
    try:
        state = await wait_for_state(srv.config.acme_dir, lambda s: s.failures > 0)
        # The CA's Retry-After (5 h) beats the first back-off step (1 h).
        assert state.next_attempt == pytest.approx(time.time() + 5 * HOUR, abs=30)
        assert state.last_error == (
            "the CA's rate limit was hit: too many certificates already issued for this exact "
            "set of names"
        )
        assert any(state.last_error in e for e in _errors(caplog))
        # One attempt, not a retry loop.
        await asyncio.sleep(0.3)
        assert fake_acme.requests.count(("POST", "/new-account")) == 1
    finally:
        await srv.stop()
