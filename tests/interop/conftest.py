"""Interop fixtures: ONE real Synapse for the whole session, and one of our servers that it can
reach over TLS.

- `synapse` (session): Synapse from .venv-synapse on 127.0.0.1:<port> with a self-signed
  certificate, server_name "127.0.0.1:<port>", SQLite, no rate limits, no certificate checks,
  loopback allowed, no trusted key servers, shared-secret registration; its log is
  <tmp>/synapse*/homeserver.log. Skipped when .venv-synapse is missing.
- `dendrite_peer` (session): our server with TLS on 127.0.0.1:<port> (server_name
  "127.0.0.1:<port>", federation TLS verification off), so Synapse can fetch our key and send
  us requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import SERVER_NAME, RunningServer, launch
from tests.integration.admin_room_helpers import make_admin
from tests.integration.room_helpers import User
from tests.interop.synadm_runner import Synadm
from tests.interop.synapse_server import SynapseServer, synapse_available, tls_overrides
from tests.peers import peer_missing


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    if not synapse_available():
        peer_missing(".venv-synapse is missing (`.ci/run` installs matrix-synapse there)")
    server = SynapseServer.start(tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def dendrite_peer(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("dendrite-peer")
    overrides = tls_overrides(tmp / "tls")
    if overrides is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    srv = await launch(tmp / "data", overrides)
    try:
        yield srv
    finally:
        # Synapse keeps idle TLS connections to us open; the TLS shutdown would wait
        # 30 s for each one's close_notify. At session end Synapse can go first.
        synapse.stop()
        await srv.stop()


# synadm's admin user and client, for a test module that defines a module-scoped `srv` (the
# server synadm drives).
@pytest.fixture(scope="module")
async def admin(srv: RunningServer) -> User:
    return await make_admin(srv, "synadmin")


@pytest.fixture(scope="module")
def synadm(srv: RunningServer, admin: User, tmp_path_factory: pytest.TempPathFactory) -> Synadm:
    return Synadm.for_server(
        tmp_path_factory.mktemp("synadm"), str(srv.client.base_url), admin.token,
        server_name=SERVER_NAME,
    )
