"""End-to-end encryption between a user of dendrite-lite and a user of a real Synapse (TLS on
loopback), each device a matrix-nio client with real crypto (vodozemac) and its own key store
(issue 13 item 5, test (b)).

Alice (dendrite-lite) and Bob (Synapse) share an encrypted room. Each message needs the whole
federation road: the sender's server queries the other user's keys (/user/keys/query) and
claims a one-time key (/user/keys/claim) from the other server, the Megolm room key travels as
an Olm-encrypted to-device message (m.direct_to_device EDU), and the receiver decrypts. Then a
new device logs in on each side in turn: its server tells the other one (m.device_list_update,
answered by a /user/devices resync), the other user's /sync names the user in
device_lists.changed, nio re-queries, sees the device, and shares the next message's key with
it, which the new device decrypts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomSendResponse,
    SyncResponse,
)

from tests.conftest import RunningServer
from tests.interop.nio_helpers import expect, nio_validation, sync_until  # noqa: F401
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_nio_e2ee import (
    ENCRYPTION,
    PASSWORD,
    _crypto_client,
    _decrypted,
    _encrypting_client,
    _publish_keys,
    _refresh_keys,
)
from tests.integration.e2ee_helpers import CrossSigning, DeviceKeyring
from tests.integration.room_helpers import User
from tests.interop.test_synapse_joins import clients as joins_clients  # noqa: F401  (fixture)
from tests.interop.test_synapse_joins import (  # noqa: F401  (fixture)
    dendrite_peer,
    dl_user,
    eventually,
    join,
    syn_user,
    wait_membership,
)

pytestmark = pytest.mark.interop

WAIT_S = 30.0  # federation (and Synapse's sender) is asynchronous
SYNAPSE_PASSWORD = "password"  # SynapseServer.register's default
_names = itertools.count(1)


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[list[AsyncClient]]:
    """Every nio client a test opens, closed at its end."""
    opened: list[AsyncClient] = []
    yield opened
    for client in opened:
        await client.close()


async def synapse_client(synapse: SynapseServer, localpart: str, store: Path) -> AsyncClient:
    body = await asyncio.to_thread(synapse.register, localpart)
    client = _crypto_client(synapse.base_url, body["user_id"], store, ssl=False)
    client.restore_login(body["user_id"], body["device_id"], body["access_token"])
    return client


async def new_device(url: str, user_id: str, password: str, store: Path) -> AsyncClient:
    """Another device of the user, logged in with its keys published and past an initial sync
    (so what it syncs next is only what comes after)."""
    client = _crypto_client(url, user_id, store, ssl=False)
    expect(await client.login(password, device_name="new device"), LoginResponse)
    await _publish_keys(client)
    expect(await client.sync(timeout=0), SyncResponse)
    return client


def device_list_changed(user_id: str) -> Any:
    def found(resp: SyncResponse) -> Any:
        return True if user_id in resp.device_list.changed else None

    return found


async def send_text(client: AsyncClient, room_id: str, body: str) -> None:
    expect(
        await client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        ),
        RoomSendResponse,
    )


async def test_encrypted_room_between_dendrite_and_synapse(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: list[AsyncClient], tmp_path: Path  # noqa: F811
) -> None:
    n = next(_names)
    ours = dendrite_peer.listening.client_url
    alice = await _encrypting_client(ours, f"e2ealice{n}", tmp_path / "alice", ssl=False)
    clients.append(alice)
    bob = await synapse_client(synapse, f"e2ebob{n}", tmp_path / "bob")
    clients.append(bob)
    await _publish_keys(alice)
    await _publish_keys(bob)

    room_id = expect(
        await alice.room_create(
            initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}]
        ),
        RoomCreateResponse,
    ).room_id
    # POST /invite, not createRoom's `invite`: that one does not reach other servers yet.
    expect(await alice.room_invite(room_id, bob.user_id), RoomInviteResponse)
    await sync_until(bob, lambda r: r.rooms.invite.get(room_id), within_s=WAIT_S)
    expect(await bob.join(room_id), JoinResponse)
    await sync_until(bob, lambda r: bob.rooms.get(room_id) and bob.rooms[room_id].encrypted or None, within_s=WAIT_S)
    await sync_until(alice, lambda r: bob.user_id in alice.rooms[room_id].users or None, within_s=WAIT_S)

    # Alice's server fetches Bob's keys from Synapse; one Olm session, one Megolm key, Bob reads.
    await _refresh_keys(alice)
    assert alice.device_store[bob.user_id][bob.device_id].ed25519 == bob.olm.account.identity_keys["ed25519"]
    await send_text(alice, room_id, "hello from dendrite-lite")
    event, _ = await sync_until(bob, _decrypted(room_id, "hello from dendrite-lite"), within_s=WAIT_S)
    assert event.sender == alice.user_id and event.decrypted

    # And the other way: Synapse fetches Alice's keys from us, claims one, sends the room key.
    await _refresh_keys(bob)
    assert alice.device_id in bob.device_store[alice.user_id]
    await send_text(bob, room_id, "hello from synapse")
    reply, _ = await sync_until(alice, _decrypted(room_id, "hello from synapse"), within_s=WAIT_S)
    assert reply.sender == bob.user_id and reply.decrypted

    # Bob's new device on Synapse: Alice hears of it, and her next message reaches it.
    bob2 = await new_device(synapse.base_url, bob.user_id, SYNAPSE_PASSWORD, tmp_path / "bob2")
    clients.append(bob2)
    await reaches_new_device(alice, bob, bob2, room_id, "for both of Bob's devices")

    # Alice's new device on dendrite-lite: Synapse hears of it, and Bob's next message reaches it.
    alice2 = await new_device(ours, alice.user_id, PASSWORD, tmp_path / "alice2")
    clients.append(alice2)
    await reaches_new_device(bob, alice, alice2, room_id, "for both of Alice's devices")


async def reaches_new_device(
    sender: AsyncClient, owner: AsyncClient, device: AsyncClient, room_id: str, body: str
) -> None:
    """The sender's /sync names the owner in device_lists.changed, nio re-queries and finds the
    owner's new `device`, and the sender's next message decrypts on both of the owner's devices."""
    await sync_until(sender, device_list_changed(owner.user_id), within_s=WAIT_S)
    await _refresh_keys(sender)
    assert device.device_id in sender.device_store[owner.user_id]
    await send_text(sender, room_id, body)
    event, _ = await sync_until(device, _decrypted(room_id, body), within_s=WAIT_S)
    assert event.sender == sender.user_id
    await sync_until(owner, _decrypted(room_id, body), within_s=WAIT_S)


async def test_cross_signing_keys_cross_both_ways(
    synapse: SynapseServer, dendrite_peer: RunningServer, joins_clients: Any  # noqa: F811
) -> None:
    """Cross-signing keys uploaded on one server reach the other one's users: our cached copy
    of the Synapse user's list is updated by Synapse's m.signing_key_update, and Synapse learns
    ours from our EDU or by asking us."""
    ours, theirs = joins_clients
    alice = await dl_user(ours, "xsalice")
    bob = await syn_user(synapse, theirs, "xsbob")
    room_id = await alice.create_room(preset="public_chat")
    await join(bob, room_id, dendrite_peer.config.server.server_name)
    await wait_membership(alice, room_id, bob.user_id, "join")
    for user in (alice, bob):
        keys = DeviceKeyring(user.user_id, user.device_id)
        await user.call("POST", "/keys/upload", {"device_keys": keys.device_keys()})

    async def master_key(asker: User, target: str) -> Any:
        body = {"device_keys": {target: []}}
        return (await asker.call("POST", "/keys/query", body)).json().get("master_keys", {}).get(target)

    assert await master_key(alice, bob.user_id) is None  # Bob's list is cached here now
    bob_signing = CrossSigning(bob.user_id)
    await bob.call("POST", "/keys/device_signing/upload", bob_signing.upload_body())
    found = await eventually(lambda: master_key(alice, bob.user_id), "Bob's master key at Alice")
    assert found["keys"] == bob_signing.key("master")["keys"]

    alice_signing = CrossSigning(alice.user_id)
    await alice.call("POST", "/keys/device_signing/upload", alice_signing.upload_body())
    found = await eventually(lambda: master_key(bob, alice.user_id), "Alice's master key at Bob")
    assert found["keys"] == alice_signing.key("master")["keys"]
