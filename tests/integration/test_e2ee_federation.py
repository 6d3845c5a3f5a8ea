"""End-to-end encryption across two real dendrite-lite servers over TLS on loopback
(server-server-api.md §Device Management, §End-to-End Encryption, §Send-to-device messaging):
keys queried and claimed through /user/keys/*, device list and cross-signing changes pushed as
EDUs and applied to the other server's cache, to-device messages both ways."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

import pytest

from dendrite_lite.federation.client import FederationClient, RemoteError
from dendrite_lite.storage import e2e_keys as e2e_keys_table
from dendrite_lite.storage import remote_device_lists as remote_table
from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, login, uia_password
from tests.integration.e2ee_helpers import CrossSigning, DeviceKeyring, upload
from tests.integration.federation_helpers import services_of
from tests.integration.sync_helpers import User, create_room, new_user, sync
from tests.integration.test_federation_membership import pair  # noqa: F401  (fixture)
from tests.interop.test_synapse_joins import eventually
from tests.spec_schema import assert_matches_operation

V1 = "/_matrix/federation/v1"
_names = itertools.count(1)


def fed_client(srv: RunningServer) -> FederationClient:
    client = services_of(srv).federation_client
    assert client is not None
    return client


def name(srv: RunningServer) -> str:
    return srv.config.server.server_name


async def with_keys(srv: RunningServer, prefix: str, otks: int = 3) -> tuple[User, DeviceKeyring]:
    user = await new_user(srv.client, f"{prefix}{next(_names)}")
    keys = DeviceKeyring.of(user)
    await upload(user, {"device_keys": keys.device_keys(), "one_time_keys": keys.one_time_keys(otks)})
    return user, keys


async def shared_room(alice: User, bob: User) -> str:
    """Alice (server A) makes a public room; Bob (server B) joins it over federation."""
    room_id = await create_room(alice, preset="public_chat")
    server = alice.user_id.partition(":")[2]
    resp = await bob.post(f"/join/{quote(room_id)}?server_name={quote(server)}", {})
    assert resp.status_code == 200, resp.text

    async def both_joined() -> bool:
        members = await alice.get(f"/rooms/{room_id}/joined_members")
        return bob.user_id in members.json().get("joined", {})

    await eventually(both_joined, "Bob's join reached server A")
    return room_id


async def query(user: User, target: str) -> dict[str, Any]:
    resp = await user.post("/keys/query", {"device_keys": {target: []}, "timeout": 10_000})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def second_device(srv: RunningServer, user: User) -> User:
    resp = await login(srv.client, user.user_id)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return User(srv.client, user.user_id, body["access_token"], body["device_id"])


async def test_keys_query_and_claim_across_servers(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, bob_keys = await with_keys(b, "bob", otks=2)
    signing = CrossSigning(bob.user_id)
    assert (await bob.post("/keys/device_signing/upload", signing.upload_body())).status_code == 200
    await shared_room(alice, bob)

    found = await query(alice, bob.user_id)
    assert found["failures"] == {}
    assert found["device_keys"][bob.user_id][bob.device_id]["keys"] == bob_keys.device_keys()["keys"]
    assert found["master_keys"][bob.user_id]["keys"] == signing.key("master")["keys"]
    assert bob.user_id in found["self_signing_keys"]
    assert bob.user_id not in found.get("user_signing_keys", {})  # only Bob may see his

    # Claimed on server B: each claim takes another key, none is handed out twice.
    body = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    claimed = [(await alice.post("/keys/claim", body)).json() for _ in range(2)]
    ids = [next(iter(c["one_time_keys"][bob.user_id][bob.device_id])) for c in claimed]
    assert len(set(ids)) == 2 and all(c["failures"] == {} for c in claimed)
    counts = (await sync(bob))["device_one_time_keys_count"]
    assert counts["signed_curve25519"] == 0

    # A server nobody answers on is a failure of its own; server B's answer still counts.
    body = {"device_keys": {bob.user_id: [], "@x:127.0.0.1:1": []}, "timeout": 3000}
    mixed = (await alice.post("/keys/query", body)).json()
    assert list(mixed["failures"]) == ["127.0.0.1:1"]
    assert bob.device_id in mixed["device_keys"][bob.user_id]


async def test_a_room_mates_list_is_resynced_on_first_query(pair: tuple[RunningServer, RunningServer]) -> None:
    """A room-mate's list we do not hold is fetched whole from /user/devices, as Synapse does:
    cached with Bob's stream id (so his next EDU applies to it, not a resync), and a device
    list change for Alice."""
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, bob_keys = await with_keys(b, "bob")
    await shared_room(alice, bob)
    since = (await sync(alice))["next_batch"]
    found = await query(alice, bob.user_id)
    assert found["failures"] == {}
    assert found["device_keys"][bob.user_id][bob.device_id]["keys"] == bob_keys.device_keys()["keys"]
    held = await services_of(a).storage.db.read(lambda c: remote_table.select_remote_lists(c, [bob.user_id]))
    theirs = await fed_client(a).get_json(name(b), f"{V1}/user/devices/{quote(bob.user_id)}")
    assert held[bob.user_id].stream_id == theirs["stream_id"] and not held[bob.user_id].stale
    assert bob.user_id in (await sync(alice, since=since))["device_lists"]["changed"]


async def test_a_resync_keeps_devices_whose_keys_name_no_device(pair: tuple[RunningServer, RunningServer]) -> None:
    """SyTest 40devicelists "resyncs when client query keys and there is no remote cache": a
    /user/devices answer whose keys are not a device's own (SyTest sends `{"device_keys": {}}`)
    still lists the devices, served as given, as Synapse does."""
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, _ = await with_keys(b, "bob")
    await shared_room(alice, bob)
    odd = {"device_keys": {}}
    await services_of(b).storage.db.write(
        lambda c: e2e_keys_table.upsert_device_keys(c, bob.user_id, bob.device_id, odd)
    )
    found = await query(alice, bob.user_id)
    assert found["failures"] == {}
    assert list(found["device_keys"][bob.user_id]) == [bob.device_id]
    assert found["device_keys"][bob.user_id][bob.device_id]["device_keys"] == {}


async def test_federation_key_endpoints(pair: tuple[RunningServer, RunningServer]) -> None:
    """Server A asks server B directly, signed; B answers for its own users only."""
    a, b = pair
    bob, bob_keys = await with_keys(b, "bob", otks=1)
    client = fed_client(a)

    devices = await client.get_json(name(b), f"{V1}/user/devices/{quote(bob.user_id)}")
    assert_matches_operation("server-server/user_devices.yaml", "/user/devices/{userId}", "get", 200, devices)
    assert devices["user_id"] == bob.user_id and devices["stream_id"] > 0
    assert [d["device_id"] for d in devices["devices"]] == [bob.device_id]
    assert devices["devices"][0]["keys"] == bob_keys.device_keys()

    with pytest.raises(RemoteError) as err:
        await client.get_json(name(b), f"{V1}/user/devices/{quote('@someone:' + name(a))}")
    assert err.value.status == 400

    asked = {bob.user_id: [], "@other:elsewhere.example": []}
    answer = await client.post_json(name(b), f"{V1}/user/keys/query", {"device_keys": asked})
    assert_matches_operation("server-server/user_keys.yaml", "/user/keys/query", "post", 200, answer)
    assert list(answer["device_keys"]) == [bob.user_id]

    claim = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    claimed = await client.post_json(name(b), f"{V1}/user/keys/claim", claim)
    assert_matches_operation("server-server/user_keys.yaml", "/user/keys/claim", "post", 200, claimed)
    assert len(claimed["one_time_keys"][bob.user_id][bob.device_id]) == 1
    again = await client.post_json(name(b), f"{V1}/user/keys/claim", claim)
    assert again["one_time_keys"] == {}  # the only key is gone

    # Unsigned requests are refused like on every federation endpoint.
    resp = await b.federation.get(f"{V1}/user/devices/{quote(bob.user_id)}")
    assert resp.status_code == 401


async def test_device_list_updates_reach_the_other_server(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, _ = await with_keys(b, "bob")
    await shared_room(alice, bob)
    await query(alice, bob.user_id)  # server A caches Bob's list
    lists = services_of(a).remote_device_lists
    assert lists is not None
    since = (await sync(alice))["next_batch"]

    # Bob's new device (server B) reaches server A as an m.device_list_update.
    phone = await second_device(b, bob)
    phone_keys = DeviceKeyring.of(phone)
    await upload(phone, {"device_keys": phone_keys.device_keys()})

    async def changed() -> Any:
        body = await sync(alice, since=since)
        return body if bob.user_id in body.get("device_lists", {}).get("changed", []) else None

    body = await eventually(changed, "Bob's new device in Alice's device_lists.changed")
    resp = await alice.get("/keys/changes", **{"from": since, "to": body["next_batch"]})
    assert bob.user_id in resp.json()["changed"]
    # The new device (its login) and its keys are two updates: the first may come alone.
    async def both_devices() -> bool:
        found = await query(alice, bob.user_id)
        return set(found["device_keys"][bob.user_id]) == {bob.device_id, phone.device_id}

    await eventually(both_devices, "Bob's phone with its keys in Alice's query")
    # Answered from the cache, which followed Bob's stream.
    held = await services_of(a).storage.db.read(lambda c: remote_table.select_remote_lists(c, [bob.user_id]))
    theirs = await fed_client(a).get_json(name(b), f"{V1}/user/devices/{quote(bob.user_id)}")
    assert held[bob.user_id].stream_id == theirs["stream_id"] and not held[bob.user_id].stale

    # Deleting the device is an update too.
    since = body["next_batch"]
    resp = await uia_password(
        bob.client, "POST", f"{V3}/delete_devices", bob.token, bob.user_id, {"devices": [phone.device_id]}
    )
    assert resp.status_code == 200, resp.text

    async def gone() -> bool:
        found = await query(alice, bob.user_id)
        return set(found["device_keys"][bob.user_id]) == {bob.device_id}

    await eventually(gone, "Bob's deleted device gone from Alice's query")


async def test_gap_in_the_update_chain_resyncs(pair: tuple[RunningServer, RunningServer]) -> None:
    """An m.device_list_update whose prev_id we never saw makes server A fetch the whole list
    from /user/devices."""
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, _ = await with_keys(b, "bob")
    await shared_room(alice, bob)
    lists = services_of(a).remote_device_lists
    assert lists is not None
    await lists.on_device_list_update(name(b), {
        "user_id": bob.user_id, "device_id": "NOSUCH", "stream_id": 10_000, "prev_id": [9_999],
        "keys": {"user_id": bob.user_id, "device_id": "NOSUCH", "keys": {}},
    })
    await lists.idle()
    held = await services_of(a).storage.db.read(lambda c: remote_table.select_remote_lists(c, [bob.user_id]))
    theirs = await fed_client(a).get_json(name(b), f"{V1}/user/devices/{quote(bob.user_id)}")
    assert held[bob.user_id].stream_id == theirs["stream_id"] < 10_000
    found = await query(alice, bob.user_id)
    assert set(found["device_keys"][bob.user_id]) == {bob.device_id}  # not the forged device

    # A stale list is asked for again at the next query (not answered from the cache, emptied
    # here), and cached afresh.
    storage = services_of(a).storage

    async def outdated(conn: Any) -> None:
        await remote_table.replace_remote_device_keys(conn, bob.user_id, {}, {})
        await remote_table.mark_remote_lists_stale(conn, [bob.user_id])

    await storage.db.write(outdated)
    found = await query(alice, bob.user_id)
    assert set(found["device_keys"][bob.user_id]) == {bob.device_id}
    held = await storage.db.read(lambda c: remote_table.select_remote_lists(c, [bob.user_id]))
    assert not held[bob.user_id].stale

    # An EDU about another server's user, or from a user we share no room with, is ignored.
    await lists.on_device_list_update(name(b), {"user_id": "@x:elsewhere.example", "device_id": "D", "stream_id": 1})
    loner = f"@loner:{name(b)}"
    await lists.on_device_list_update(name(b), {"user_id": loner, "device_id": "D", "stream_id": 1})
    await lists.idle()
    none = await services_of(a).storage.db.read(
        lambda c: remote_table.select_remote_lists(c, ["@x:elsewhere.example", loner])
    )
    assert none == {}


async def test_cross_signing_keys_reach_the_other_server(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, _ = await with_keys(b, "bob")
    await shared_room(alice, bob)
    assert bob.user_id not in (await query(alice, bob.user_id)).get("master_keys", {})
    signing = CrossSigning(bob.user_id)
    assert (await bob.post("/keys/device_signing/upload", signing.upload_body())).status_code == 200

    async def master() -> Any:
        return (await query(alice, bob.user_id)).get("master_keys", {}).get(bob.user_id)

    key = await eventually(master, "Bob's master key in Alice's query")
    assert key["keys"] == signing.key("master")["keys"]


async def test_to_device_messages_both_ways(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, _ = await with_keys(a, "alice")
    bob, _ = await with_keys(b, "bob")
    await sync(bob)
    bob_since = (await sync(bob))["next_batch"]
    resp = await alice.put(
        "/sendToDevice/m.test/t1", {"messages": {bob.user_id: {"*": {"hello": "bob"}}}}
    )
    assert resp.status_code == 200, resp.text

    async def bob_got() -> Any:
        return (await sync(bob, since=bob_since))["to_device"]["events"]

    events = await eventually(bob_got, "Alice's to-device message at Bob")
    assert events == [{"sender": alice.user_id, "type": "m.test", "content": {"hello": "bob"}}]

    alice_since = (await sync(alice))["next_batch"]
    resp = await bob.put(
        "/sendToDevice/m.test/t1", {"messages": {alice.user_id: {alice.device_id: {"hi": "alice"}}}}
    )
    assert resp.status_code == 200, resp.text

    async def alice_got() -> Any:
        return (await sync(alice, since=alice_since))["to_device"]["events"]

    events = await eventually(alice_got, "Bob's to-device message at Alice")
    assert events == [{"sender": bob.user_id, "type": "m.test", "content": {"hi": "alice"}}]
