"""coturn, the TURN server self-hosters run, accepts the credentials GET /voip/turnServer hands
out from the shared secret (its use-auth-secret mode), and refuses tampered or foreign ones.

coturn runs on loopback for this module (tests/interop/coturn.py), with turnutils_peer as the
far end of a call; turnutils_uclient (coturn's own test client) makes a TURN allocation with the
credentials, as a calling client's ICE agent does, and relays packets through it to the peer
and back.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest

from dendrite_lite.config import TurnConfig
from dendrite_lite.turn_credentials import rest_api_password
from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, register, running_server
from tests.interop.coturn import SECRET, coturn  # noqa: F401 (coturn is a fixture)
from tests.peers import find_program


@pytest.fixture(scope="module")
async def srv(
    coturn: tuple[int, int], tmp_path_factory: pytest.TempPathFactory  # noqa: F811
) -> AsyncIterator[RunningServer]:
    turn = TurnConfig(uris=(f"turn:127.0.0.1:{coturn[0]}?transport=udp",), shared_secret=SECRET)
    async with running_server(tmp_path_factory.mktemp("turn-peer"), {"turn": turn}) as s:
        yield s


def _allocate(ports: tuple[int, int], username: str, password: str) -> subprocess.CompletedProcess[str]:
    # -n 1 -m 1: one client, one message of -l bytes; -e/-r: the peer the relay sends it to.
    port, peer_port = ports
    return subprocess.run(
        [
            find_program("turnutils_uclient") or "turnutils_uclient", "-p", str(port),
            "-u", username, "-w", password, "-n", "1", "-m", "1", "-l", "64",
            "-e", "127.0.0.1", "-r", str(peer_port), "127.0.0.1",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )


async def _credentials(srv: RunningServer, name: str) -> dict:
    user = await register(srv.client, name)
    resp = await srv.client.get(
        f"{V3}/voip/turnServer", headers={"Authorization": f"Bearer {user['access_token']}"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_coturn_relays_with_our_credentials(
    srv: RunningServer, coturn: tuple[int, int]  # noqa: F811
) -> None:
    creds = await _credentials(srv, "caller")
    assert creds["uris"] == [f"turn:127.0.0.1:{coturn[0]}?transport=udp"]
    done = _allocate(coturn, creds["username"], creds["password"])
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-2000:]
    assert "Cannot complete Allocation" not in out
    assert "Total lost packets 0 " in out, out[-2000:]  # relayed to the peer and back


async def test_coturn_refuses_tampered_and_foreign_credentials(
    srv: RunningServer, coturn: tuple[int, int]  # noqa: F811
) -> None:
    creds = await _credentials(srv, "mallory")
    # Someone else's name with this password: the HMAC no longer matches.
    other_name = creds["username"].replace("@mallory", "@caller")
    for username, password in [
        (other_name, creds["password"]),
        (creds["username"], rest_api_password("another-server's-secret", creds["username"])),
    ]:
        done = _allocate(coturn, username, password)
        assert done.returncode != 0
        assert "Cannot complete Allocation" in done.stdout + done.stderr
