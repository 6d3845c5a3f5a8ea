"""Issuance against Pebble through a real dendrite-lite server: HTTP-01 on the port-80 listener,
TLS-ALPN-01 on the TLS listener (on both event loops), the served chain verified to Pebble's
root, the files private."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import httpx
import pytest

from dendrite_lite.event_loop import new_event_loop
from dendrite_lite.tls.renewal import renewal_at
from dendrite_lite.tls.state import ACCOUNT_FILE, CERTIFICATE_FILE, KEY_FILE, STATE_FILE
from tests.conftest import StartServer, launch
from tests.interop.pebble import (  # noqa: F401 (pebble is a fixture)
    Pebble,
    acme_overrides,
    connect_tls,
    dns_names,
    pebble,
    wait_for_state,
)


async def test_http_01(pebble: Pebble, start_server: StartServer) -> None:  # noqa: F811
    names = ("http01.matrix.test", "delegated.http01.test")
    for name in names:
        pebble.add_name(name)
    started = time.monotonic()
    srv = await start_server(acme_overrides(pebble, *names))
    acme_dir = srv.config.acme_dir
    state = await wait_for_state(acme_dir, lambda s: s.last_attempt is not None)
    elapsed = time.monotonic() - started
    assert state.last_error == "" and state.failures == 0
    assert state.names == names and state.challenge == "http-01"
    assert state.issuer.startswith("CN=Pebble Intermediate CA")
    assert state.directory == pebble.directory
    assert state.not_before is not None and state.not_after is not None
    assert state.next_renewal == renewal_at(state.not_before, state.not_after)
    assert elapsed < 10, f"issuance took {elapsed:.1f} s"
    for file in (CERTIFICATE_FILE, KEY_FILE, ACCOUNT_FILE, STATE_FILE):
        assert stat.S_IMODE((acme_dir / file).stat().st_mode) == 0o600, file
    assert stat.S_IMODE(acme_dir.stat().st_mode) == 0o700
    root = pebble.root_pem()
    # Both listeners serve it (one shared context), verified to Pebble's root, for each name.
    for listener in ("client", "federation"):
        port = getattr(srv.listening, listener)[1]
        for name in names:
            conn = await connect_tls(port, name, root)
            assert dns_names(conn.certificate) == sorted(names)
            assert await conn.get("/_matrix/federation/v1/version", name) == 200
            await conn.close()
    # The port-80 listener stays up for the next renewal, and redirects everything else.
    assert srv.listening.acme_http == ("127.0.0.1", pebble.http_port)
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"http://127.0.0.1:{pebble.http_port}/_matrix/client/versions",
                              headers={"Host": names[0]})
    assert resp.status_code == 301
    assert resp.headers["location"] == f"https://{names[0]}/_matrix/client/versions"


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_tls_alpn_01(pebble: Pebble, tmp_path: Path, loop_kind: str) -> None:  # noqa: F811
    """Answered by the SNI callback on the live TLS listener: on uvloop (the server's default
    loop) as on asyncio's."""
    pebble.add_name("alpn.matrix.test")

    async def run() -> tuple[list[str], str, str]:
        srv = await launch(tmp_path, acme_overrides(pebble, "alpn.matrix.test",
                                                    challenge="tls-alpn-01"))
        try:
            assert srv.listening.acme_http is None  # no port-80 listener
            state = await wait_for_state(srv.config.acme_dir, lambda s: s.last_attempt is not None)
            conn = await connect_tls(pebble.tls_port, "alpn.matrix.test", pebble.root_pem())
            status = await conn.get("/_matrix/federation/v1/version", "alpn.matrix.test")
            await conn.close()
            assert status == 200
            return dns_names(conn.certificate), state.challenge, state.last_error
        finally:
            await srv.stop()

    with asyncio.Runner(loop_factory=lambda: new_event_loop(loop_kind)) as runner:
        names, challenge, error = runner.run(run())
    assert (names, challenge, error) == (["alpn.matrix.test"], "tls-alpn-01", "")
