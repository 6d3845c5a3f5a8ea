"""Cross-signing over HTTP (cross_signing.yaml): /keys/device_signing/upload with UIA only when
keys are replaced, /keys/signatures/upload, and what /keys/query shows to whom."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server, uia_password
from tests.integration.e2ee_helpers import CrossSigning, DeviceKeyring, upload
from tests.integration.sync_helpers import User, create_room, join, new_user, sync
from tests.spec_schema import assert_matches_operation

_names = itertools.count(1)
DEVICE_SIGNING = "/keys/device_signing/upload"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("cross_signing")) as s:
        yield s


async def _user(srv: RunningServer) -> User:
    return await new_user(srv.client, f"xs{next(_names)}")


async def _query(user: User, *user_ids: str) -> dict[str, Any]:
    resp = await user.post("/keys/query", {"device_keys": {u: [] for u in user_ids}})
    assert resp.status_code == 200, resp.text
    assert_matches_operation("client-server/keys.yaml", "/keys/query", "post", 200, resp.json())
    return resp.json()  # type: ignore[no-any-return]


async def _signatures(user: User, body: dict[str, Any]) -> dict[str, Any]:
    resp = await user.post("/keys/signatures/upload", body)
    assert resp.status_code == 200, resp.text
    assert_matches_operation("client-server/cross_signing.yaml", "/keys/signatures/upload", "post", 200, resp.json())
    return resp.json()  # type: ignore[no-any-return]


async def _cross_signed(srv: RunningServer) -> tuple[User, CrossSigning, DeviceKeyring]:
    """A user with device keys and cross-signing keys (first upload: no UIA)."""
    user = await _user(srv)
    device = DeviceKeyring.of(user)
    await upload(user, {"device_keys": device.device_keys()})
    xs = CrossSigning(user.user_id)
    resp = await user.post(DEVICE_SIGNING, xs.upload_body())
    assert resp.status_code == 200, resp.text
    return user, xs, device


async def test_first_upload_and_retry_need_no_uia_replacing_does(srv: RunningServer) -> None:
    alice, xs, _ = await _cross_signed(srv)
    # The same keys again (a retry after a lost response): no UIA.
    assert (await alice.post(DEVICE_SIGNING, xs.upload_body())).status_code == 200
    new = CrossSigning(alice.user_id)
    resp = await uia_password(
        srv.client, "POST", f"/_matrix/client/v3{DEVICE_SIGNING}", alice.token,
        alice.user_id, new.upload_body(),
    )
    assert resp.status_code == 200, resp.text
    found = await _query(alice, alice.user_id)
    assert found["master_keys"][alice.user_id] == new.key("master")


async def test_unstable_paths_serve_the_same_endpoints(srv: RunningServer) -> None:
    """Synapse still serves the pre-1.1 /unstable forms, and older clients (and SyTest) use
    them."""
    alice = await _user(srv)
    device = DeviceKeyring.of(alice)
    await upload(alice, {"device_keys": device.device_keys()})
    xs = CrossSigning(alice.user_id)
    unstable = "/_matrix/client/unstable/keys"
    resp = await srv.client.post(
        f"{unstable}/device_signing/upload", json=xs.upload_body(), headers=alice.headers
    )
    assert resp.status_code == 200, resp.text
    signed = xs.sign(device.device_keys(), "self_signing")
    resp = await srv.client.post(
        f"{unstable}/signatures/upload",
        json={alice.user_id: {alice.device_id: signed}}, headers=alice.headers,
    )
    assert resp.status_code == 200 and resp.json() == {"failures": {}}, resp.text
    found = await _query(alice, alice.user_id)
    assert found["master_keys"][alice.user_id] == xs.key("master")


async def test_query_shows_keys_and_hides_user_signing_key(srv: RunningServer) -> None:
    alice, xs, _ = await _cross_signed(srv)
    bob = await _user(srv)
    own = await _query(alice, alice.user_id)
    assert own["master_keys"] == {alice.user_id: xs.key("master")}
    assert own["self_signing_keys"] == {alice.user_id: xs.key("self_signing")}
    assert own["user_signing_keys"] == {alice.user_id: xs.key("user_signing")}
    theirs = await _query(bob, alice.user_id)
    assert theirs["master_keys"] == own["master_keys"]
    assert theirs["self_signing_keys"] == own["self_signing_keys"]
    assert theirs["user_signing_keys"] == {}


@pytest.mark.parametrize(
    "change, status, errcode",
    [
        (lambda xs, b: b["self_signing_key"]["signatures"].clear(), 400, "M_INVALID_SIGNATURE"),
        (lambda xs, b: b.update(user_signing_key=xs.sign(xs.key("user_signing", None), "self_signing")), 400, "M_INVALID_SIGNATURE"),
        (lambda xs, b: b["master_key"].update(usage=["self_signing"]), 400, "M_INVALID_PARAM"),
        (lambda xs, b: b["master_key"].update(user_id="@other:test.localhost"), 400, "M_INVALID_PARAM"),
        (lambda xs, b: b["master_key"]["keys"].update({"ed25519:x": "x"}), 400, "M_INVALID_PARAM"),
        (lambda xs, b: b.pop("master_key"), 400, "M_MISSING_PARAM"),
        (lambda xs, b: b.update(master_key="key"), 400, "M_BAD_JSON"),
    ],
    ids=["ssk-unsigned", "usk-signed-by-ssk", "wrong-usage", "other-user", "two-keys", "no-master", "not-object"],
)
async def test_bad_cross_signing_keys(srv: RunningServer, change, status: int, errcode: str) -> None:
    alice = await _user(srv)
    xs = CrossSigning(alice.user_id)
    body = xs.upload_body()
    change(xs, body)
    resp = await alice.post(DEVICE_SIGNING, body)
    assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == errcode
    assert (await _query(alice, alice.user_id))["master_keys"] == {}


async def test_key_named_like_a_device_is_forbidden(srv: RunningServer) -> None:
    alice = await _user(srv)
    xs = CrossSigning(alice.user_id)
    body = xs.upload_body()
    public = xs.public("master")
    await alice.put(f"/devices/{alice.device_id}", {"display_name": "x"})
    # A device whose id is the master key's public key (a client may name its device freely).
    resp = await srv.client.post("/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "correct horse battery staple", "device_id": public,
    })
    assert resp.status_code == 200, resp.text
    resp = await alice.post(DEVICE_SIGNING, body)
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "M_FORBIDDEN"


async def test_self_signed_device_visible_to_everyone(srv: RunningServer) -> None:
    alice, xs, device = await _cross_signed(srv)
    bob = await _user(srv)
    signed = xs.sign(device.device_keys(), "self_signing")
    assert await _signatures(alice, {alice.user_id: {alice.device_id: signed}}) == {"failures": {}}
    seen = (await _query(bob, alice.user_id))["device_keys"][alice.user_id][alice.device_id]
    ssk = f"ed25519:{xs.public('self_signing')}"
    assert seen["signatures"][alice.user_id][ssk] == signed["signatures"][alice.user_id][ssk]
    assert f"ed25519:{alice.device_id}" in seen["signatures"][alice.user_id]


async def test_master_signed_by_own_device(srv: RunningServer) -> None:
    alice, xs, device = await _cross_signed(srv)
    signed = device.sign(xs.key("master"))
    assert await _signatures(alice, {alice.user_id: {xs.public("master"): signed}}) == {"failures": {}}
    master = (await _query(alice, alice.user_id))["master_keys"][alice.user_id]
    assert f"ed25519:{alice.device_id}" in master["signatures"][alice.user_id]


async def test_user_signing_visible_only_to_the_signer(srv: RunningServer) -> None:
    alice, alice_xs, _ = await _cross_signed(srv)
    bob, bob_xs, _ = await _cross_signed(srv)
    carol = await _user(srv)
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    since = (await sync(alice))["next_batch"]
    signed = alice_xs.sign(bob_xs.key("master"), "user_signing")
    assert await _signatures(alice, {bob.user_id: {bob_xs.public("master"): signed}}) == {"failures": {}}
    usk = f"ed25519:{alice_xs.public('user_signing')}"
    by_alice = (await _query(alice, bob.user_id))["master_keys"][bob.user_id]
    assert by_alice["signatures"][alice.user_id] == {usk: signed["signatures"][alice.user_id][usk]}
    for viewer in (bob, carol):
        master = (await _query(viewer, bob.user_id))["master_keys"][bob.user_id]
        assert alice.user_id not in master.get("signatures", {})
    # Alice's other devices hear of Bob's changed keys through the device list stream.
    assert bob.user_id in (await sync(alice, since=since))["device_lists"]["changed"]


async def test_signature_failures(srv: RunningServer) -> None:
    alice, _, device = await _cross_signed(srv)
    bob, bob_xs, _ = await _cross_signed(srv)
    plain = await _user(srv)  # no cross-signing keys
    forged = CrossSigning(alice.user_id)  # keys the server does not know
    body = {
        alice.user_id: {
            alice.device_id: forged.sign(device.device_keys(), "self_signing"),
            "NOSUCHKEY": {"user_id": alice.user_id},
        },
        bob.user_id: {bob_xs.public("master"): {**bob_xs.key("master"), "usage": ["changed"]}},
    }
    failures = (await _signatures(alice, body))["failures"]
    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[alice.user_id]["NOSUCHKEY"]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user_id][bob_xs.public("master")]["errcode"] == "M_INVALID_PARAM"
    nothing = await _signatures(plain, {bob.user_id: {bob_xs.public("master"): bob_xs.key("master")}})
    assert nothing["failures"][bob.user_id][bob_xs.public("master")]["errcode"] == "M_INVALID_SIGNATURE"
    resp = await alice.post("/keys/signatures/upload", {alice.user_id: []})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"


async def test_upload_wakes_room_mates(srv: RunningServer) -> None:
    alice = await _user(srv)
    bob = await _user(srv)
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    since = (await sync(bob))["next_batch"]
    resp = await alice.post(DEVICE_SIGNING, CrossSigning(alice.user_id).upload_body())
    assert resp.status_code == 200
    body = await sync(bob, since=since, timeout=5000)
    assert body["device_lists"]["changed"] == [alice.user_id]


async def test_user_signing_changes_are_the_owners_only(srv: RunningServer) -> None:
    """The user-signing key and its signatures are shown to their owner only, so only the owner
    hears of them in device_lists.changed (Synapse's user signature stream); room-mates do not."""
    alice, xs, _ = await _cross_signed(srv)
    bob, bob_xs, _ = await _cross_signed(srv)
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    since_alice = (await sync(alice))["next_batch"]
    since_bob = (await sync(bob))["next_batch"]
    new_usk = CrossSigning(alice.user_id)  # a new user-signing key under the same master key
    new_usk.keys["master"] = xs.keys["master"]
    resp = await uia_password(
        srv.client, "POST", f"/_matrix/client/v3{DEVICE_SIGNING}", alice.token, alice.user_id,
        {"user_signing_key": new_usk.key("user_signing")},
    )
    assert resp.status_code == 200, resp.text
    signed = new_usk.sign(bob_xs.key("master"), "user_signing")
    assert await _signatures(alice, {bob.user_id: {bob_xs.public("master"): signed}}) == {"failures": {}}
    assert set((await sync(alice, since=since_alice))["device_lists"]["changed"]) == {alice.user_id, bob.user_id}
    assert "device_lists" not in await sync(bob, since=since_bob)
