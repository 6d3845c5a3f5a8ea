"""End-to-end encryption between two users of dendrite-lite, each a matrix-nio client with real
crypto (nio's e2e extra: vodozemac underneath) and its own key store (issue 13 items 1-2).

Alice and Bob upload their device and one-time keys, share an encrypted room, and Alice sends a
message: nio queries Bob's keys, claims one of his one-time keys, opens an Olm session and
sends the Megolm room key to his device over /sendToDevice; Bob's /sync hands him that to-device
message and the encrypted event, and he decrypts it. Nothing here is mocked: if the server
garbles a key, a signature, a to-device message or a /sync field, Bob cannot read the message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import vodozemac
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysClaimResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    LoginResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomEncryptionEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)
from nio.crypto import Olm  # type: ignore[import-untyped]

from tests.conftest import RunningServer, StartServer
from tests.interop.nio_helpers import (
    expect,
    nio_validation,  # noqa: F401  (autouse: nio's complaints fail)
    sync_until,
)

PASSWORD = "nio e2ee password 123"
ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}


@dataclass
class Pair:
    srv: RunningServer
    alice: AsyncClient
    bob: AsyncClient


@pytest.fixture
async def pair(start_server: StartServer, tmp_path: Path) -> AsyncIterator[Pair]:
    """A fresh server and two registered nio clients with crypto on, each with its own store."""
    srv = await start_server({"registration.mode": "open", "ratelimit.enabled": False})
    url = srv.listening.client_url
    alice = await _encrypting_client(url, "alice", tmp_path / "alice")
    bob = await _encrypting_client(url, "bob", tmp_path / "bob")
    try:
        yield Pair(srv, alice, bob)
    finally:
        await alice.close()
        await bob.close()


async def _encrypting_client(url: str, name: str, store: Path, *, ssl: bool | None = None) -> AsyncClient:
    """A registered nio client with crypto on and its olm account in `store` (`ssl=False`: a
    server with a self-signed certificate)."""
    client = _crypto_client(url, name, store, ssl=ssl)
    expect(await client.register(name, PASSWORD, device_name=f"nio {name}"), RegisterResponse)
    assert client.olm is not None, "nio's e2e extra (vodozemac) is not installed"
    return client


def _crypto_client(url: str, user: str, store: Path, *, ssl: bool | None = None) -> AsyncClient:
    store.mkdir()
    config = AsyncClientConfig(
        max_timeouts=0, max_limit_exceeded=0, encryption_enabled=True, store_sync_tokens=True
    )
    return AsyncClient(url, user, store_path=str(store), config=config, ssl=ssl)


async def _publish_keys(client: AsyncClient) -> int:
    """Upload device and one-time keys; the server's count of them."""
    assert client.should_upload_keys
    uploaded = expect(await client.keys_upload(), KeysUploadResponse)
    assert uploaded.signed_curve25519_count > 0
    assert not client.should_upload_keys  # nio agrees the server holds what it uploaded
    return int(uploaded.signed_curve25519_count)


async def _refresh_keys(client: AsyncClient) -> None:
    """What nio's sync_forever does between syncs: upload keys when low, query changed users."""
    if client.should_upload_keys:
        expect(await client.keys_upload(), KeysUploadResponse)
    if client.should_query_keys:
        expect(await client.keys_query(), KeysQueryResponse)


def _decrypted(room_id: str, body: str) -> Any:
    """A sync_until test: (the decrypted message, the device's one-time key count then)."""

    def found(resp: SyncResponse) -> Any:
        info = resp.rooms.join.get(room_id)
        for event in info.timeline.events if info else []:
            assert not isinstance(event, MegolmEvent), f"undecryptable: {event}"
            if isinstance(event, RoomMessageText) and event.body == body:
                return event, resp.device_key_count.signed_curve25519
        return None

    return found


async def test_olm_and_megolm_between_two_nio_clients(pair: Pair) -> None:
    srv, alice, bob = pair.srv, pair.alice, pair.bob
    await _publish_keys(alice)
    bob_otks = await _publish_keys(bob)

    created = expect(
        await alice.room_create(
            invite=[bob.user_id],
            initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}],
        ),
        RoomCreateResponse,
    )
    room_id = created.room_id
    await sync_until(bob, lambda r: r.rooms.invite.get(room_id))
    expect(await bob.join(room_id), JoinResponse)
    await sync_until(
        bob,
        lambda r: any(isinstance(e, RoomEncryptionEvent) for e in r.rooms.join[room_id].state)
        if room_id in r.rooms.join else None,
    )
    # Alice sees Bob join; nio then tracks his devices and queries them.
    await sync_until(alice, lambda r: bob.user_id in alice.rooms[room_id].users or None)
    assert alice.rooms[room_id].encrypted
    await _refresh_keys(alice)
    assert bob.device_id in alice.device_store[bob.user_id]
    assert alice.device_store[bob.user_id][bob.device_id].ed25519 == bob.olm.account.identity_keys["ed25519"]

    # room_send shares the Megolm session first: /keys/claim + Olm to-device, then the event.
    sent = expect(
        await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "secret hello"},
            ignore_unverified_devices=True,
        ),
        RoomSendResponse,
    )
    stored = await srv.client.get(
        f"/_matrix/client/v3/rooms/{room_id}/event/{sent.event_id}",
        headers={"Authorization": f"Bearer {bob.access_token}"},
    )
    assert stored.json()["type"] == "m.room.encrypted"  # the server never saw the text
    assert "secret hello" not in stored.text

    event, otks = await sync_until(bob, _decrypted(room_id, "secret hello"))
    assert event.sender == alice.user_id
    assert event.decrypted and event.verified is False  # decrypted, not yet verified
    # Alice's share claimed exactly one of Bob's one-time keys.
    assert otks == bob_otks - 1

    # Bob answers on his own Olm/Megolm sessions; Alice decrypts it.
    await _refresh_keys(bob)
    expect(
        await bob.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "secret reply"},
            ignore_unverified_devices=True,
        ),
        RoomSendResponse,
    )
    reply, _ = await sync_until(alice, _decrypted(room_id, "secret reply"))
    assert reply.sender == bob.user_id


async def test_claimed_key_is_gone(pair: Pair) -> None:
    """nio's own /keys/claim takes a one-time key the server then no longer hands out."""
    alice, bob = pair.alice, pair.bob
    await _publish_keys(bob)
    before = expect(await bob.sync(timeout=0), SyncResponse).device_key_count.signed_curve25519
    claimed = expect(
        await alice.keys_claim({bob.user_id: [bob.device_id]}), KeysClaimResponse
    )
    key = claimed.one_time_keys[bob.user_id][bob.device_id]
    assert len(key) == 1 and next(iter(key)).startswith("signed_curve25519:")
    after = expect(await bob.sync(timeout=0), SyncResponse).device_key_count.signed_curve25519
    assert after == before - 1


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _backup_session_data(session: Any, public_key: str) -> dict[str, str]:
    """A Megolm session encrypted for the backup the way m.megolm_backup.v1.curve25519-aes-sha2
    says (end_to_end_encryption.md §Backup algorithm), with vodozemac's PkEncryption."""
    plaintext = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": session.sender_key,
        "sender_claimed_keys": {"ed25519": session.ed25519},
        "forwarding_curve25519_key_chain": [],
        "session_key": session.export_session(session.first_known_index),
    }
    encryption = vodozemac.PkEncryption.from_key(vodozemac.Curve25519PublicKey.from_base64(public_key))
    message = encryption.encrypt(json.dumps(plaintext).encode())
    return {"ephemeral": _b64(message.ephemeral_key), "ciphertext": _b64(message.ciphertext), "mac": _b64(message.mac)}


async def test_room_key_backed_up_and_restored_on_a_new_device(pair: Pair, tmp_path: Path) -> None:
    """Alice backs up the Megolm key of her message; her new device, which never received the
    key, downloads the backup, decrypts it with the backup key and reads the message."""
    srv, alice = pair.srv, pair.alice
    await _publish_keys(alice)
    room_id = expect(
        await alice.room_create(
            initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}]
        ),
        RoomCreateResponse,
    ).room_id
    await sync_until(alice, lambda r: alice.rooms.get(room_id) and alice.rooms[room_id].encrypted or None)
    expect(
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "backed up"}),
        RoomSendResponse,
    )
    (session,) = [s for s in alice.olm.inbound_group_store if s.room_id == room_id]

    backup_key = vodozemac.PkDecryption()
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    auth_data = {"public_key": backup_key.public_key.to_base64()}
    resp = await srv.client.post(
        "/_matrix/client/v3/room_keys/version",
        json={"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": auth_data},
        headers=headers,
    )
    version = resp.json()["version"]
    key = {
        "first_message_index": session.first_known_index, "forwarded_count": 0,
        "is_verified": True, "session_data": _backup_session_data(session, auth_data["public_key"]),
    }
    resp = await srv.client.put(
        # Session ids are base64: a '/' in one must be sent as %2F.
        f"/_matrix/client/v3/room_keys/keys/{room_id}/{quote(session.id, safe='')}",
        params={"version": version}, json=key, headers=headers,
    )
    assert resp.status_code == 200 and resp.json()["count"] == 1, resp.text

    new = _crypto_client(srv.listening.client_url, alice.user_id, tmp_path / "alice-new")
    try:
        expect(await new.login(PASSWORD, device_name="new device"), LoginResponse)
        encrypted = await sync_until(new, _undecryptable(room_id))
        latest = (await srv.client.get(
            "/_matrix/client/v3/room_keys/version", headers={"Authorization": f"Bearer {new.access_token}"}
        )).json()
        assert latest["version"] == version and latest["count"] == 1
        backed_up = (await srv.client.get(
            "/_matrix/client/v3/room_keys/keys", params={"version": version},
            headers={"Authorization": f"Bearer {new.access_token}"},
        )).json()["rooms"][room_id]["sessions"][session.id]["session_data"]
        plaintext = json.loads(backup_key.decrypt(vodozemac.Message.from_base64(
            backed_up["ciphertext"], backed_up["mac"], backed_up["ephemeral"]
        )))
        restored = Olm._import_group_session(
            plaintext["session_key"], plaintext["sender_claimed_keys"]["ed25519"],
            plaintext["sender_key"], room_id, plaintext["forwarding_curve25519_key_chain"],
        )
        assert new.olm.inbound_group_store.add(restored)
        decrypted = new.decrypt_event(encrypted)
        assert isinstance(decrypted, RoomMessageText) and decrypted.body == "backed up"
    finally:
        await new.close()


def _undecryptable(room_id: str) -> Any:
    def found(resp: SyncResponse) -> Any:
        info = resp.rooms.join.get(room_id)
        events = [e for e in (info.timeline.events if info else []) if isinstance(e, MegolmEvent)]
        return events[0] if events else None

    return found
