"""Renewal against Pebble: swapped into the running listeners (a connection made before keeps
its certificate and keeps working, a new one gets the new certificate), a changed name list
reissues with the same account, and `tls renew`'s two paths (ask the running server through
renew-request; renew_standalone when no server runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dendrite_lite.tls import manager
from dendrite_lite.tls.manager import RenewerBusy, renew_standalone
from dendrite_lite.tls.state import ACCOUNT_FILE, RENEW_REQUEST_FILE
from tests.conftest import StartServer, launch, make_config
from tests.interop.pebble import (  # noqa: F401 (pebble is a fixture)
    Pebble,
    acme_overrides,
    connect_tls,
    dns_names,
    pebble,
    relaunch,
    wait_for_state,
)


@pytest.fixture(autouse=True)
def quick_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    # The renewer looks for renew-request every 2 s; the tests need not wait that long.
    monkeypatch.setattr(manager, "RENEW_REQUEST_POLL_S", 0.1)


async def test_renewal_is_swapped_in_without_a_restart(
    pebble: Pebble, start_server: StartServer  # noqa: F811
) -> None:
    name = "renew.matrix.test"
    pebble.add_name(name)
    srv = await start_server(acme_overrides(pebble, name))
    acme_dir = srv.config.acme_dir
    first = await wait_for_state(acme_dir, lambda s: s.last_success is not None)
    root = pebble.root_pem()
    port = srv.listening.federation[1]  # type: ignore[index]
    before = await connect_tls(port, name, root)
    assert await before.get("/_matrix/federation/v1/version", name) == 200

    (acme_dir / RENEW_REQUEST_FILE).touch()  # what `dendrite-lite tls renew` does
    second = await wait_for_state(acme_dir, lambda s: s.last_success != first.last_success)
    assert not (acme_dir / RENEW_REQUEST_FILE).exists()  # taken
    assert second.failures == 0 and second.not_after is not None

    after = await connect_tls(port, name, root)
    assert after.certificate.serial_number != before.certificate.serial_number
    assert dns_names(after.certificate) == [name]
    # The connection made before: still open, still working, still its old certificate.
    assert await before.get("/_matrix/federation/v1/version", name) == 200
    peer = before.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert peer == before.certificate.public_bytes(Encoding.DER)
    await before.close()
    await after.close()


async def test_changed_names_reissue_with_the_same_account(
    pebble: Pebble, tmp_path: Path  # noqa: F811
) -> None:
    pebble.add_name("one.names.test")
    pebble.add_name("two.names.test")
    srv = await launch(tmp_path, acme_overrides(pebble, "one.names.test"))
    first = await wait_for_state(srv.config.acme_dir, lambda s: s.last_success is not None)
    await srv.stop()
    account = json.loads((tmp_path / "acme" / ACCOUNT_FILE).read_text())

    srv = await relaunch(tmp_path, acme_overrides(pebble, "one.names.test", "two.names.test"))
    try:
        second = await wait_for_state(srv.config.acme_dir,
                                      lambda s: s.last_success != first.last_success)
        assert second.names == ("one.names.test", "two.names.test")
        conn = await connect_tls(srv.listening.federation[1], "two.names.test",  # type: ignore[index]
                                 pebble.root_pem())
        assert dns_names(conn.certificate) == ["one.names.test", "two.names.test"]
        await conn.close()
    finally:
        await srv.stop()
    # Key and registration reused across the restart.
    assert json.loads((tmp_path / "acme" / ACCOUNT_FILE).read_text()) == account


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
async def test_renew_standalone(pebble: Pebble, tmp_path: Path, challenge: str) -> None:  # noqa: F811
    """`tls renew` without a running server: it binds listen.acme_http (http-01) or the TLS
    listener's address (tls-alpn-01) itself; with a server running, the server holds the lock
    and the CLI must ask it instead."""
    name = f"standalone.{challenge}.test"
    pebble.add_name(name)
    overrides = acme_overrides(pebble, name, challenge=challenge)
    config = make_config(tmp_path, overrides)
    state = await renew_standalone(config)
    assert (state.names, state.last_error, state.challenge) == ((name,), "", challenge)
    assert (config.acme_dir / "certificate.pem").exists()

    srv = await launch(tmp_path, overrides)
    try:
        with pytest.raises(RenewerBusy, match="renewer.lock is locked"):
            await renew_standalone(config)
        # The server serves what the standalone renewal got.
        conn = await connect_tls(srv.listening.federation[1], name, pebble.root_pem())  # type: ignore[index]
        assert dns_names(conn.certificate) == [name]
        await conn.close()
    finally:
        await srv.stop()
