"""Room complexity with real Synapse on loopback, both ways: Synapse answers our
GET /unstable/rooms/{roomId}/complexity and our limit refuses its big room; a Synapse with
`limit_remote_rooms` enabled asks us and refuses our big room. Both limits are 0.03 (15 state
events), so a room made with 30 extra state events is big and a fresh one is small."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer, launch
from tests.interop.synapse_server import SynapseServer, synapse_available, tls_overrides
from tests.interop.test_synapse_joins import dl_user, membership, syn_user
from tests.interop.test_synapse_keys import client_for
from tests.peers import peer_missing

pytestmark = pytest.mark.interop

LOW = 0.03
_LIMITED = f"limit_remote_rooms:\n  enabled: true\n  complexity: {LOW}\n"
_FILLER = [{"type": "org.example.filler", "state_key": str(i), "content": {"i": i}} for i in range(30)]


@pytest.fixture(scope="module")
def limited_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A second Synapse with Synapse's own room complexity limit on."""
    if not synapse_available():
        peer_missing(".venv-synapse is missing (`.ci/run` installs matrix-synapse there)")
    server = SynapseServer.start(tmp_path_factory.mktemp("synapse-limited"), _LIMITED)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def ours(
    synapse: SynapseServer, limited_synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("dendrite-complexity")
    overrides = tls_overrides(tmp / "tls")
    if overrides is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    srv = await launch(tmp / "data", {
        **overrides, "registration.mode": "open", "ratelimit.enabled": False,
        "federation.max_room_complexity": LOW,
    })
    yield srv
    # The limited Synapse keeps idle TLS connections to us; it goes first so ours need not
    # wait for their close_notify.
    limited_synapse.stop()
    await srv.stop()


@pytest.fixture
async def http(ours: RunningServer) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {"ours": httpx.AsyncClient(base_url=ours.listening.client_url, verify=False, timeout=60)}
    yield clients
    for client in clients.values():
        await client.aclose()


def _client(http: dict[str, httpx.AsyncClient], synapse: SynapseServer) -> httpx.AsyncClient:
    if synapse.base_url not in http:
        http[synapse.base_url] = httpx.AsyncClient(base_url=synapse.base_url, verify=False, timeout=60)
    return http[synapse.base_url]


async def _create(user: Any, *, big: bool) -> str:
    body = {"preset": "public_chat", "room_version": "10", "initial_state": _FILLER if big else []}
    return str((await user.call("POST", "/createRoom", body)).json()["room_id"])


async def _join(user: Any, room_id: str, server: str) -> httpx.Response:
    return await user.call(
        "POST", f"/join/{quote(room_id)}", {}, params={"server_name": server}, expect=None
    )


async def test_synapse_answers_our_query(
    synapse: SynapseServer, ours: RunningServer, http: dict[str, httpx.AsyncClient]
) -> None:
    alice = await syn_user(synapse, _client(http, synapse), "cx_alice")
    room_id = await _create(alice, big=True)
    state = (await alice.call("GET", f"/rooms/{quote(room_id)}/state")).json()
    client = client_for(ours)
    try:
        answer = await client.get_json(
            synapse.server_name, f"/_matrix/federation/unstable/rooms/{quote(room_id, safe='')}/complexity"
        )
    finally:
        await client.aclose()
    assert answer == {"v1": round(len(state) / 500, 2)}


async def test_our_limit_refuses_a_big_synapse_room_before_joining(
    synapse: SynapseServer, ours: RunningServer, http: dict[str, httpx.AsyncClient]
) -> None:
    alice = await syn_user(synapse, _client(http, synapse), "cx_alice")
    bob = await dl_user(http["ours"], "cx_bob")
    big, small = await _create(alice, big=True), await _create(alice, big=False)
    resp = await _join(bob, big, synapse.server_name)
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_RESOURCE_LIMIT_EXCEEDED")
    assert resp.json()["error"].startswith("This room is too large for this server to join")
    # Refused on Synapse's answer, before make_join: Synapse never saw bob in the room.
    assert await membership(alice, big, bob.user_id) is None
    assert (await _join(bob, small, synapse.server_name)).status_code == 200
    assert await membership(alice, small, bob.user_id) == "join"


async def test_a_limited_synapse_asks_us_and_refuses_our_big_room(
    limited_synapse: SynapseServer, ours: RunningServer, http: dict[str, httpx.AsyncClient]
) -> None:
    alice = await dl_user(http["ours"], "cx_alice")
    carol = await syn_user(limited_synapse, _client(http, limited_synapse), "cx_carol")
    big, small = await _create(alice, big=True), await _create(alice, big=False)
    name = ours.config.server.server_name
    resp = await _join(carol, big, name)
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_RESOURCE_LIMIT_EXCEEDED")
    # Synapse refused on our answer, before make_join (a join-then-leave would show "leave").
    assert await membership(alice, big, carol.user_id) is None
    assert (await _join(carol, small, name)).status_code == 200
    # send_join stored it here before answering Synapse.
    assert await membership(alice, small, carol.user_id) == "join"
