"""Keys and signed requests against a real Synapse over TLS on loopback.

- our keyring fetches and verifies Synapse's server key (directly, and via Synapse as notary);
- our federation client signs requests that Synapse accepts (Synapse fetches OUR key from the
  running dendrite-lite) and Synapse refuses a forged signature;
- our notary serves Synapse's key signed by both servers.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from signedjson.types import VerifyKey

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.crypto.signing import decode_verify_key, verify_json_signature
from dendrite_lite.federation.client import FederationClient, RemoteError, make_ssl_context
from dendrite_lite.federation.keyring import Keyring
from dendrite_lite.storage import Storage
from tests.conftest import RunningServer
from tests.interop.synapse_server import SynapseServer, free_port

pytestmark = pytest.mark.interop


def synapse_keys(synapse: SynapseServer) -> dict:
    with synapse.http() as http:
        return dict(http.get("/_matrix/key/v2/server").json())


def client_for(srv: RunningServer, **kw) -> FederationClient:
    return FederationClient(srv.config.server.server_name, srv.key, verify_tls=False, **kw)


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    yield s
    await s.close()


async def test_keyring_fetches_and_verifies_synapse_key(
    synapse: SynapseServer, dendrite_peer: RunningServer, storage: Storage
) -> None:
    published = synapse_keys(synapse)
    (key_id,) = published["verify_keys"]
    client = client_for(dendrite_peer)
    keyring = Keyring(dendrite_peer.config.server.server_name, dendrite_peer.key, storage, client)
    try:
        key = await keyring.get_key(synapse.server_name, key_id, 0)
    finally:
        await client.aclose()
    assert key is not None
    verify_json_signature(published, synapse.server_name, key_id, key.verify_key)
    assert key.expired_ts is None and key.valid_until_ts is not None
    # Cached: a keyring without network finds it again.
    offline = Keyring(dendrite_peer.config.server.server_name, dendrite_peer.key, storage, None)
    assert await offline.get_key(synapse.server_name, key_id, 0) == key


class Blocking(httpx.AsyncHTTPTransport):
    """A real transport that refuses connections to one address (a server that is down)."""

    def __init__(self, blocked_netloc: str) -> None:
        super().__init__(verify=make_ssl_context(False))
        self.blocked = blocked_netloc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.netloc.decode() == self.blocked:
            raise httpx.ConnectError("blocked by the test", request=request)
        return await super().handle_async_request(request)


async def test_keyring_uses_synapse_as_notary(
    synapse: SynapseServer, dendrite_peer: RunningServer, storage: Storage
) -> None:
    """Our peer's key, with the peer unreachable for us: Synapse fetches it and signs."""
    peer_name = dendrite_peer.config.server.server_name
    asker_key = new_server_key("asker")
    transport = Blocking(peer_name)
    client = FederationClient("asker.invalid", asker_key, transport=transport, verify_tls=False)
    keyring = Keyring("asker.invalid", asker_key, storage, client, notaries=(synapse.server_name,))
    try:
        key = await keyring.get_key(peer_name, dendrite_peer.key.key_id, 0)
    finally:
        await client.aclose()
        await transport.aclose()
    assert key is not None
    assert key.verify_key.encode() == dendrite_peer.key.verify_key.encode()
    # Synapse's own key was fetched (directly) to check the notary signature.
    assert keyring.get_verify_key(synapse.server_name, next(iter(synapse_keys(synapse)["verify_keys"])), 0)


async def test_synapse_accepts_our_signed_requests(
    synapse: SynapseServer, dendrite_peer: RunningServer
) -> None:
    user = synapse.register("keys_alice")["user_id"]
    client = client_for(dendrite_peer)
    try:
        version = await client.get_json(synapse.server_name, "/_matrix/federation/v1/version")
        assert version["server"]["name"] == "Synapse"
        # query/profile needs a valid X-Matrix signature: Synapse fetches our key from us.
        profile = await client.get_json(
            synapse.server_name, "/_matrix/federation/v1/query/profile",
            query={"user_id": user, "field": "displayname"},
        )
        assert profile == {"displayname": "keys_alice"}
    finally:
        await client.aclose()


async def test_synapse_refuses_a_forged_signature(
    synapse: SynapseServer, dendrite_peer: RunningServer
) -> None:
    user = synapse.register("keys_bob")["user_id"]
    # Our server name and key id, but another private key.
    impostor = new_server_key(dendrite_peer.key.key_id.split(":", 1)[1])
    client = FederationClient(dendrite_peer.config.server.server_name, impostor, verify_tls=False)
    try:
        with pytest.raises(RemoteError) as e:
            await client.get_json(
                synapse.server_name, "/_matrix/federation/v1/query/profile",
                query={"user_id": user},
            )
    finally:
        await client.aclose()
    assert (e.value.status, e.value.errcode) == (401, "M_UNAUTHORIZED")


async def test_our_notary_serves_synapse_key(synapse: SynapseServer, dendrite_peer: RunningServer) -> None:
    published = synapse_keys(synapse)
    (key_id,) = published["verify_keys"]
    assert dendrite_peer.listening.federation_url is not None
    async with httpx.AsyncClient(base_url=dendrite_peer.listening.federation_url, verify=False) as http:
        resp = await http.post("/_matrix/key/v2/query", json={"server_keys": {synapse.server_name: {}}})
    assert resp.status_code == 200
    (answer,) = resp.json()["server_keys"]
    assert answer["verify_keys"] == published["verify_keys"]
    verify_json_signature(answer, synapse.server_name, key_id, _vk(published, key_id))
    ours = dendrite_peer.config.server.server_name
    verify_json_signature(answer, ours, dendrite_peer.key.key_id, dendrite_peer.key.verify_key)


async def test_synapse_notary_serves_our_key(synapse: SynapseServer, dendrite_peer: RunningServer) -> None:
    ours = dendrite_peer.config.server.server_name
    with synapse.http() as http:
        resp = http.get(f"/_matrix/key/v2/query/{ours}")
    assert resp.status_code == 200
    (answer,) = resp.json()["server_keys"]
    assert answer["verify_keys"] == {dendrite_peer.key.key_id: {"key": dendrite_peer.key.verify_key_base64}}
    verify_json_signature(answer, ours, dendrite_peer.key.key_id, dendrite_peer.key.verify_key)


def _vk(published: dict, key_id: str) -> VerifyKey:
    return decode_verify_key(key_id, published["verify_keys"][key_id]["key"])


async def test_synapse_admin_helpers(synapse: SynapseServer) -> None:
    """The fixture's admin token reaches the destinations admin API. (Backoff itself only
    happens for transactions, which later interop tests exercise with reset_connection.)"""
    down = f"127.0.0.1:{free_port()}"
    assert synapse.destination(down) is None
    assert synapse.reset_connection(down) == 404  # Synapse never sent a transaction there
    with synapse.http() as http:
        me = http.get("/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {synapse.admin()}"})
    assert me.json()["user_id"] == f"@interop_admin:{synapse.server_name}"
