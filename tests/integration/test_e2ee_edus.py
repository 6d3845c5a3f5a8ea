"""End-to-end encryption EDUs on one real server (server-server-api.md §Device Management,
§Send-to-device messaging):

- outbound: what a TLS peer in our users' rooms receives (m.device_list_update with its
  stream_id/prev_id chain, m.signing_key_update, m.direct_to_device);
- inbound, from a simulated second server whose name points at a closed port (so it never
  answers a /user/devices resync): updates applied to the cached list in order, a gap marking
  it stale, to-device messages delivered once per message_id, joins making lists stale.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.federation import device_list_edus
from dendrite_lite.rooms.pipeline import EventSpec
from dendrite_lite.storage import remote_device_lists as remote_table
from tests.conftest import RunningServer, StartServer
from tests.integration.account_helpers import running_server
from tests.integration.e2ee_helpers import CrossSigning, DeviceKeyring
from tests.integration.federation_helpers import (
    RemoteServer,
    join_remote_user,
    services_of,
)
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_edus_out import OPEN, EduRecorder, _eventually
from tests.integration.test_federation_send import _room_with_remote_member, srv  # noqa: F401
from tests.integration.test_key_query import tls_peer

FAST = {**OPEN, "federation.trusted_key_servers": ()}


async def upload_keys(user: User, keys: DeviceKeyring) -> None:
    await user.call("POST", "/keys/upload", {"device_keys": keys.device_keys()})


async def test_our_changes_reach_the_servers_in_our_rooms(start_server: StartServer, tmp_path: Path) -> None:
    recorder = EduRecorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server({"federation.verify_tls": False, **FAST})
    them = peer.config.server.server_name
    try:
        alice = await new_user(srv, "alice")
        room_id = await alice.create_room(preset="public_chat")
        bob = f"@bob:{them}"
        await join_remote_user(srv, room_id, bob)
        keys = DeviceKeyring(alice.user_id, alice.device_id)

        await upload_keys(alice, keys)
        await _eventually(lambda: recorder.of_type("m.device_list_update"))
        (first,) = recorder.of_type("m.device_list_update")
        assert first["user_id"] == alice.user_id and first["device_id"] == alice.device_id
        assert first["prev_id"] == [] and isinstance(first["stream_id"], int)
        assert first["keys"] == keys.device_keys() and "deleted" not in first

        await alice.call("PUT", f"/devices/{alice.device_id}", {"display_name": "Alice's phone"})
        await _eventually(lambda: len(recorder.of_type("m.device_list_update")) == 2)
        second = recorder.of_type("m.device_list_update")[1]
        assert second["prev_id"] == [first["stream_id"]] and second["stream_id"] > first["stream_id"]
        assert second["device_display_name"] == "Alice's phone"

        signing = CrossSigning(alice.user_id)
        await alice.call("POST", "/keys/device_signing/upload", signing.upload_body())
        await _eventually(lambda: recorder.of_type("m.signing_key_update"))
        (update,) = recorder.of_type("m.signing_key_update")
        assert update["user_id"] == alice.user_id
        assert update["master_key"]["keys"] == signing.key("master")["keys"]
        assert update["self_signing_key"]["keys"] == signing.key("self_signing")["keys"]
        assert "user_signing_key" not in update  # never leaves the server

        # Alice cross-signs her device: the device's update carries the new signature.
        signed = signing.sign(keys.device_keys(), "self_signing")
        await alice.call("POST", "/keys/signatures/upload", {alice.user_id: {alice.device_id: signed}})
        await _eventually(lambda: len(recorder.of_type("m.device_list_update")) == 3)
        third = recorder.of_type("m.device_list_update")[2]
        assert third["prev_id"] == [second["stream_id"]]
        assert third["keys"]["signatures"][alice.user_id] == signed["signatures"][alice.user_id]

        messages = {bob: {"*": {"secret": 1}}, alice.user_id: {alice.device_id: {"own": 1}}}
        await alice.call("PUT", "/sendToDevice/m.test/txn1", {"messages": messages})
        await alice.call("PUT", "/sendToDevice/m.test/txn1", {"messages": messages})  # a retry
        await _eventually(lambda: recorder.of_type("m.direct_to_device"))
        await alice.call("PUT", "/sendToDevice/m.test/txn2", {"messages": {bob: {"D": {"n": 2}}}})
        await _eventually(lambda: len(recorder.of_type("m.direct_to_device")) == 2)
        one, two = recorder.of_type("m.direct_to_device")
        assert one["sender"] == alice.user_id and one["type"] == "m.test"
        assert one["messages"] == {bob: {"*": {"secret": 1}}}  # only the peer's users
        assert two["messages"] == {bob: {"D": {"n": 2}}}
        assert one["message_id"] != two["message_id"] and len(one["message_id"]) <= 32
    finally:
        await srv.stop()
        await peer.stop()


async def test_a_join_sends_the_users_device_list_to_the_rooms_new_servers(
    start_server: StartServer, tmp_path: Path
) -> None:
    recorder = EduRecorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server({"federation.verify_tls": False, **FAST})
    bob = f"@bob:{peer.config.server.server_name}"

    def carols() -> list[dict[str, Any]]:
        return [c for c in recorder.of_type("m.device_list_update") if c["user_id"] == carol.user_id]

    try:
        alice, carol = await new_user(srv, "alice"), await new_user(srv, "carol")
        keys = DeviceKeyring(carol.user_id, carol.device_id)
        await upload_keys(carol, keys)  # while she shares no room with the peer: not sent
        rooms = [await alice.create_room(preset="public_chat") for _ in range(2)]
        for room_id in rooms:
            await join_remote_user(srv, room_id, bob)

        await carol.call("POST", f"/rooms/{rooms[0]}/join", {})
        await _eventually(carols)
        (update,) = carols()
        assert update["device_id"] == carol.device_id and update["keys"] == keys.device_keys()

        # Her profile change in that room, and a second room with the same server, are no news
        # to it; her next real change follows the chain.
        await carol.call("PUT", f"/rooms/{rooms[0]}/state/m.room.member/{carol.user_id}",
                         {"membership": "join", "displayname": "Carol"})
        await carol.call("POST", f"/rooms/{rooms[1]}/join", {})
        await asyncio.sleep(0.5)
        await carol.call("PUT", f"/devices/{carol.device_id}", {"display_name": "Carol's phone"})
        await _eventually(lambda: len(carols()) == 2)
        await asyncio.sleep(0.3)
        assert [c["prev_id"] for c in carols()] == [update["prev_id"], [update["stream_id"]]]
    finally:
        await srv.stop()
        await peer.stop()


async def test_a_change_right_after_a_join_is_sent_once(
    start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join sends the change from before it (none here); a change right after the join
    reaches the server once, through the normal flush, not again from the join (SyTest's
    prev_id test saw the repeat)."""
    # The join's task looks for the committed join at this interval: a wide one lets the
    # change land before it does, every time.
    monkeypatch.setattr(device_list_edus, "JOIN_POLL_S", 0.5)
    recorder = EduRecorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server({"federation.verify_tls": False, **FAST})
    try:
        alice, carol = await new_user(srv, "alice"), await new_user(srv, "carol")
        room_id = await alice.create_room(preset="public_chat")
        await join_remote_user(srv, room_id, f"@bob:{peer.config.server.server_name}")
        await carol.call("POST", f"/rooms/{room_id}/join", {})
        await upload_keys(carol, DeviceKeyring(carol.user_id, carol.device_id))
        await _eventually(lambda: recorder.of_type("m.device_list_update"))
        await asyncio.sleep(1.2)  # what the join would send, it has sent by now
        updates = [u for u in recorder.of_type("m.device_list_update") if u["user_id"] == carol.user_id]
        assert len(updates) == 1 and "keys" in updates[0]
    finally:
        await srv.stop()
        await peer.stop()


async def held(srv: RunningServer, user_id: str) -> remote_table.RemoteList | None:
    lists = await services_of(srv).storage.db.read(lambda c: remote_table.select_remote_lists(c, [user_id]))
    return lists.get(user_id)


async def set_cached(srv: RunningServer, user_id: str, stream_id: int, devices: dict[str, Any]) -> None:
    async def write(conn: Any) -> None:
        await remote_table.replace_remote_device_keys(conn, user_id, devices, {})
        await remote_table.upsert_remote_list(conn, user_id, stream_id)

    await services_of(srv).storage.db.write(write)


async def device_list_update(srv: RunningServer, remote: RemoteServer, content: dict[str, Any]) -> None:
    resp = await remote.send(srv, edus=[{"edu_type": "m.device_list_update", "content": content}])
    assert resp.status_code == 200, resp.text
    lists = services_of(srv).remote_device_lists
    assert lists is not None
    await lists.idle()


async def test_updates_apply_in_order_and_a_gap_makes_the_list_stale(srv: RunningServer) -> None:
    alice, _, remote, bob = await _room_with_remote_member(srv)
    since = (await alice.call("GET", "/sync", params={"timeout": "0"})).json()["next_batch"]
    old = DeviceKeyring(bob, "OLD")
    await set_cached(srv, bob, 5, {"OLD": old.device_keys()})
    new = DeviceKeyring(bob, "NEW")

    await device_list_update(srv, remote, {
        "user_id": bob, "device_id": "NEW", "stream_id": 6, "prev_id": [5], "keys": new.device_keys(),
        "device_display_name": "Bob's laptop",
    })
    # Answered from the cache: Bob's server is unreachable.
    found = (await alice.call("POST", "/keys/query", {"device_keys": {bob: []}})).json()
    assert found["failures"] == {}
    assert found["device_keys"][bob]["NEW"]["unsigned"] == {"device_display_name": "Bob's laptop"}
    assert set(found["device_keys"][bob]) == {"OLD", "NEW"}
    body = (await alice.call("GET", "/sync", params={"since": since, "timeout": "0"})).json()
    assert bob in body["device_lists"]["changed"]

    await device_list_update(srv, remote, {"user_id": bob, "device_id": "OLD", "stream_id": 7, "prev_id": [6], "deleted": True})
    found = (await alice.call("POST", "/keys/query", {"device_keys": {bob: []}})).json()
    assert set(found["device_keys"][bob]) == {"NEW"}
    assert (await held(srv, bob)) == remote_table.RemoteList(bob, 7, False)

    # A repeat changes nothing; an update after one we never got means a resync, which fails
    # here: the list is stale and the next query asks Bob's server (and fails for it).
    await device_list_update(srv, remote, {"user_id": bob, "device_id": "OLD", "stream_id": 6, "prev_id": [5], "keys": old.device_keys()})
    assert (await held(srv, bob)) == remote_table.RemoteList(bob, 7, False)
    await device_list_update(srv, remote, {"user_id": bob, "device_id": "X", "stream_id": 9, "prev_id": [8]})
    assert (await held(srv, bob)) == remote_table.RemoteList(bob, 7, True)
    query = {"device_keys": {bob: []}, "timeout": 2000}
    found = (await alice.call("POST", "/keys/query", query)).json()
    assert list(found["failures"]) == [remote.name]

    # Another server's user, or a user sharing no room with ours: ignored.
    await device_list_update(srv, remote, {"user_id": "@eve:elsewhere.example", "device_id": "E", "stream_id": 1})
    await device_list_update(srv, remote, {"user_id": remote.user("loner"), "device_id": "L", "stream_id": 1})
    assert await held(srv, "@eve:elsewhere.example") is None and await held(srv, remote.user("loner")) is None


async def test_keys_are_kept_and_served_as_their_server_sent_them(srv: RunningServer) -> None:
    # As Synapse (SyTest 40devicelists "Server correctly handles incoming m.device_list_update"):
    # keys that name no user or device are the origin's business; clients check them.
    alice, _, remote, bob = await _room_with_remote_member(srv)
    await set_cached(srv, bob, 1, {})
    await device_list_update(srv, remote, {
        "user_id": bob, "device_id": "ODD", "stream_id": 2, "prev_id": [1],
        "device_display_name": "test display name", "keys": {"device_keys": {}},
    })
    await device_list_update(srv, remote, {
        "user_id": bob, "device_id": "KEYLESS", "stream_id": 3, "prev_id": [2],
    })
    assert (await held(srv, bob)) == remote_table.RemoteList(bob, 3, False)
    found = (await alice.call("POST", "/keys/query", {"device_keys": {bob: ["ODD", "KEYLESS"]}})).json()
    assert found["device_keys"][bob] == {
        "ODD": {"device_keys": {}, "unsigned": {"device_display_name": "test display name"}},
    }


async def test_signing_key_update_replaces_cached_keys(srv: RunningServer) -> None:
    alice, _, remote, bob = await _room_with_remote_member(srv)
    await set_cached(srv, bob, 3, {})
    signing = CrossSigning(bob)
    content = {"user_id": bob, "master_key": signing.key("master"), "self_signing_key": signing.key("self_signing")}
    resp = await remote.send(srv, edus=[{"edu_type": "m.signing_key_update", "content": content}])
    assert resp.status_code == 200
    lists = services_of(srv).remote_device_lists
    assert lists is not None
    await lists.idle()
    found = (await alice.call("POST", "/keys/query", {"device_keys": {bob: []}})).json()
    assert found["master_keys"][bob] == signing.key("master")
    assert found["self_signing_keys"][bob] == signing.key("self_signing")

    # Alice verifies Bob: her signature of his (cached) master key is hers to see.
    mine = CrossSigning(alice.user_id)
    await alice.call("POST", "/keys/device_signing/upload", mine.upload_body())
    signed = mine.sign(signing.key("master"), "user_signing")
    resp = await alice.call("POST", "/keys/signatures/upload", {bob: {signing.public("master"): signed}})
    assert resp.json() == {"failures": {}}
    found = (await alice.call("POST", "/keys/query", {"device_keys": {bob: []}})).json()
    assert found["master_keys"][bob]["signatures"][alice.user_id] == signed["signatures"][alice.user_id]


async def test_remote_to_device_messages_are_delivered_once(srv: RunningServer) -> None:
    alice, _, remote, bob = await _room_with_remote_member(srv)
    since = (await alice.call("GET", "/sync", params={"timeout": "0"})).json()["next_batch"]

    def edu(message_id: str, sender: str = bob, device: str = "*") -> dict[str, Any]:
        content = {"sender": sender, "type": "m.test", "message_id": message_id,
                   "messages": {alice.user_id: {device: {"id": message_id}}}}
        return {"edu_type": "m.direct_to_device", "content": content}

    # The same message id in two transactions (a resend under a new txnId) is delivered once;
    # a message for another server's user, or from a user the origin does not host, is not.
    for edus in ([edu("m1")], [edu("m1"), edu("m2", device=alice.device_id)], [edu("m3", sender="@eve:elsewhere.example")]):
        assert (await remote.send(srv, edus=edus)).status_code == 200
    body = (await alice.call("GET", "/sync", params={"since": since, "timeout": "0"})).json()
    assert body["to_device"]["events"] == [
        {"sender": bob, "type": "m.test", "content": {"id": "m1"}},
        {"sender": bob, "type": "m.test", "content": {"id": "m2"}},
    ]


async def test_joins_that_start_sharing_a_room_make_cached_lists_stale(srv: RunningServer) -> None:
    _, room_id, remote, bob = await _room_with_remote_member(srv)
    carol = remote.user("carol")
    for user_id in (bob, carol):
        await set_cached(srv, user_id, 1, {})

    await join_remote_user(srv, room_id, carol)  # a remote user joins: their list is stale
    assert (await held(srv, carol)).stale and not (await held(srv, bob)).stale  # type: ignore[union-attr]

    # A member's profile change is no new sharing.
    await set_cached(srv, carol, 1, {})
    await services_of(srv).pipeline.send(
        room_id, EventSpec(carol, "m.room.member", {"membership": "join", "displayname": "C"}, carol)
    )
    assert not (await held(srv, carol)).stale  # type: ignore[union-attr]

    # One of our users joining: the room's remote members' lists are stale.
    dave = await new_user(srv, "dave")
    await dave.call("POST", f"/rooms/{room_id}/join", {})
    assert (await held(srv, bob)).stale and (await held(srv, carol)).stale  # type: ignore[union-attr]


def queued_edus(path: Path, destination: str) -> list[tuple[str, dict[str, Any]]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT edu_type, edu_content FROM federation_outbox WHERE destination = ?"
            " AND edu_type IS NOT NULL ORDER BY position", (destination,),
        ).fetchall()
    finally:
        conn.close()
    return [(t, json.loads(c)) for t, c in rows]


async def test_queued_edus_survive_a_restart_and_missed_changes_are_queued_at_start(tmp_path: Path) -> None:
    """The peer is down: our to-device message and device list update wait in the outbox across
    a restart; a device list change committed but never queued (a crash in between) is queued
    when the server starts again."""
    data = tmp_path / "data"
    async with running_server(data, FAST) as srv:
        alice, _, remote, bob = await _room_with_remote_member(srv)
        await alice.call("PUT", "/sendToDevice/m.test/t1", {"messages": {bob: {"*": {"n": 1}}}})
        await upload_keys(alice, DeviceKeyring(alice.user_id, alice.device_id))
        db = srv.config.database_path
        key_file = srv.config.signing_key_path
    before = queued_edus(db, remote.name)
    assert [t for t, _ in before] == ["m.direct_to_device", "m.device_list_update"]
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM federation_outbox WHERE edu_type = 'm.device_list_update'")
    conn.execute("UPDATE device_list_outbound SET stream_id = 0")
    conn.commit()
    conn.close()

    key_file.unlink()  # the test launcher writes a fresh key each start; the database stays
    async with running_server(data, FAST):
        pass
    assert queued_edus(db, remote.name) == before
