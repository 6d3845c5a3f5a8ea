"""PUT /send, GET/PUT /state, GET /event, PUT /redact over real HTTP, with the error cases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import User, new_user
from tests.spec_schema import assert_matches_operation

CS = "client-server/"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("events")) as s:
        yield s


async def _room(srv: RunningServer, **body) -> tuple[User, User, str]:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="public_chat", **body)
    await bob.call("POST", f"/join/{room_id}", {})
    return alice, bob, room_id


async def test_send_is_idempotent_per_device(srv: RunningServer) -> None:
    alice, bob, room_id = await _room(srv)
    path = f"/rooms/{room_id}/send/m.room.message/txn1"
    first = await alice.call("PUT", path, {"msgtype": "m.text", "body": "one"})
    assert_matches_operation(
        CS + "room_send.yaml", "/rooms/{roomId}/send/{eventType}/{txnId}", "put", 200, first.json()
    )
    again = await alice.call("PUT", path, {"msgtype": "m.text", "body": "one"})
    assert again.json() == first.json()
    # The same txn id from another user (another device) is a different request.
    other = await bob.call("PUT", path, {"msgtype": "m.text", "body": "one"})
    assert other.json()["event_id"] != first.json()["event_id"]
    # Reusing it on another room from the same device is refused, not answered with the old id.
    room2 = await alice.create_room()
    bad = await alice.call(
        "PUT", f"/rooms/{room2}/send/m.room.message/txn1", {"body": "x"}, expect=400
    )
    assert bad.json()["errcode"] == "M_INVALID_PARAM"
    event = await alice.call("GET", f"/rooms/{room_id}/event/{first.json()['event_id']}")
    body = event.json()
    assert_matches_operation(CS + "rooms.yaml", "/rooms/{roomId}/event/{eventId}", "get", 200, body)
    assert body["content"] == {"msgtype": "m.text", "body": "one"}
    assert body["unsigned"]["transaction_id"] == "txn1"
    # Only the sending device sees its transaction id.
    seen_by_bob = await bob.call("GET", f"/rooms/{room_id}/event/{first.json()['event_id']}")
    assert "transaction_id" not in seen_by_bob.json()["unsigned"]


async def test_post_redact_without_txn_id(srv: RunningServer) -> None:
    """POST /redact/{eventId} (Synapse's, used by SyTest): a redaction per call."""
    alice, _, room_id = await _room(srv)
    event_id = await alice.send(room_id, "oops")
    resp = await alice.call("POST", f"/rooms/{room_id}/redact/{event_id}", {"reason": "typo"})
    redaction = (await alice.call("GET", f"/rooms/{room_id}/event/{resp.json()['event_id']}")).json()
    assert redaction["type"] == "m.room.redaction" and redaction["content"]["reason"] == "typo"
    assert (await alice.call("GET", f"/rooms/{room_id}/event/{event_id}")).json()["content"] == {}


async def test_post_send_without_txn_id(srv: RunningServer) -> None:
    """POST /send/{eventType} (Synapse's, used by SyTest): each call sends a new event, and
    content outside canonical JSON is refused with M_BAD_JSON like the PUT."""
    alice, _, room_id = await _room(srv, room_version="6")
    path = f"/rooms/{room_id}/send/sytest.dummy"
    first = await alice.call("POST", path, {"body": "x"})
    second = await alice.call("POST", path, {"body": "x"})
    assert first.json()["event_id"] != second.json()["event_id"]
    for bad in (2**53, -(2**53), 1.1):
        resp = await alice.call("POST", path, {"body": bad}, expect=400)
        assert resp.json()["errcode"] == "M_BAD_JSON"
    resp = await alice.client.post(
        f"/_matrix/client/v3{path}", content=b'{"body": NaN}',
        headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 400


async def test_send_errors(srv: RunningServer) -> None:
    alice, _, room_id = await _room(srv)
    outsider = await new_user(srv, "eve")
    resp = await outsider.call(
        "PUT", f"/rooms/{room_id}/send/m.room.message/t1", {"body": "x"}, expect=403
    )
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await alice.call("PUT", "/rooms/!nope:test.localhost/send/m.room.message/t2", {}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/t3", [1, 2], expect=400)
    assert resp.json()["errcode"] == "M_BAD_JSON"
    resp = await alice.client.put(
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t4", content=b"{not json",
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
    big = {"body": "x" * 70_000}
    resp = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/t5", big, expect=413)
    assert resp.json()["errcode"] == "M_TOO_LARGE"


async def test_send_rate_limited(start_server) -> None:
    from dendrite_lite.users.passwords import fast_hashing_for_tests

    with fast_hashing_for_tests():
        srv = await start_server({
            "registration.mode": "open", "ratelimit.send_per_second": 0.1, "ratelimit.send_burst": 2,
            "ratelimit.register_burst": 100, "ratelimit.register_per_second": 100.0,
        })
        alice = await new_user(srv, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id, "1", txn="a")
    await alice.send(room_id, "2", txn="b")
    resp = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/c", {"body": "3"}, expect=429)
    assert resp.json()["errcode"] == "M_LIMIT_EXCEEDED" and resp.json()["retry_after_ms"] > 0
    # A retransmission of an earlier request is answered, not limited.
    again = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/a", {"body": "1"})
    assert again.status_code == 200


async def test_state_put_get_and_dedupe(srv: RunningServer) -> None:
    alice, bob, room_id = await _room(srv)
    resp = await alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "t1"})
    assert_matches_operation(
        CS + "room_state.yaml", "/rooms/{roomId}/state/{eventType}/{stateKey}", "put", 200, resp.json()
    )
    same = await alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "t1"})
    assert same.json() == resp.json()
    await alice.call("PUT", f"/rooms/{room_id}/state/org.example.thing/a%2Fb", {"v": 1})
    assert (await bob.state(room_id, "org.example.thing", "a%2Fb")).json() == {"v": 1}
    assert (await bob.call("GET", f"/rooms/{room_id}/state/m.room.topic")).json() == {"topic": "t1"}
    event = (await bob.state(room_id, "m.room.topic", params={"format": "event"})).json()
    assert event["event_id"] == resp.json()["event_id"] and event["state_key"] == ""
    # Bob (power 0) may not change state that needs 50.
    forbidden = await bob.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "x"}, expect=403)
    assert forbidden.json()["errcode"] == "M_FORBIDDEN"
    missing = await bob.state(room_id, "m.room.avatar", expect=404)
    assert missing.json()["errcode"] == "M_NOT_FOUND"
    state = (await bob.call("GET", f"/rooms/{room_id}/state")).json()
    assert_matches_operation(CS + "rooms.yaml", "/rooms/{roomId}/state", "get", 200, state)
    types = {(e["type"], e["state_key"]) for e in state}
    assert ("m.room.create", "") in types and ("m.room.member", bob.user_id) in types
    assert ("org.example.thing", "a/b") in types
    outsider = await new_user(srv, "eve")
    resp = await outsider.call("GET", f"/rooms/{room_id}/state", expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await alice.call("GET", "/rooms/!nope:test.localhost/state", expect=404)


async def test_state_after_leaving_is_frozen(srv: RunningServer) -> None:
    alice, bob, room_id = await _room(srv)
    await alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "before"})
    await bob.call("POST", f"/rooms/{room_id}/leave", {})
    await alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "after"})
    assert (await bob.state(room_id, "m.room.topic")).json() == {"topic": "before"}
    assert (await alice.state(room_id, "m.room.topic")).json() == {"topic": "after"}


async def test_redaction_served_redacted(srv: RunningServer) -> None:
    alice, bob, room_id = await _room(srv)
    event_id = await bob.send(room_id, "oops")
    other = await alice.send(room_id, "alice's")
    # Bob may not redact alice's event, but may redact his own.
    resp = await bob.call("PUT", f"/rooms/{room_id}/redact/{other}/r1", {}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await bob.call("PUT", f"/rooms/{room_id}/redact/{event_id}/r2", {"reason": "typo"})
    assert_matches_operation(
        CS + "redaction.yaml", "/rooms/{roomId}/redact/{eventId}/{txnId}", "put", 200, resp.json()
    )
    again = await bob.call("PUT", f"/rooms/{room_id}/redact/{event_id}/r2", {"reason": "typo"})
    assert again.json() == resp.json()
    served = (await alice.call("GET", f"/rooms/{room_id}/event/{event_id}")).json()
    assert served["content"] == {}
    because = served["unsigned"]["redacted_because"]
    assert because["event_id"] == served["unsigned"]["redacted_by"] == resp.json()["event_id"]
    assert because["content"]["reason"] == "typo" and because["redacts"] == event_id
    # Moderators (alice, the creator) may redact anyone's events.
    await alice.call("PUT", f"/rooms/{room_id}/redact/{await bob.send(room_id)}/r3", {})
    resp = await alice.call("PUT", f"/rooms/{room_id}/redact/$nope/r4", {}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    # An event of another room: 400, as Synapse (SyTest "PUT /redact disallows redaction of
    # event in different room"), and nothing is sent.
    elsewhere = await alice.create_room()
    resp = await alice.call("PUT", f"/rooms/{elsewhere}/redact/{other}/r5", {}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    assert "redacted_because" not in (await alice.call("GET", f"/rooms/{room_id}/event/{other}")).json()["unsigned"]


async def test_event_visibility(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(
        preset="public_chat",
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}],
    )
    early = await alice.send(room_id, "before bob")
    bob = await new_user(srv, "bob")
    resp = await bob.call("GET", f"/rooms/{room_id}/event/{early}", expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    await bob.call("POST", f"/join/{room_id}", {})
    await bob.call("GET", f"/rooms/{room_id}/event/{early}", expect=404)
    late = await alice.send(room_id, "after bob")
    assert (await bob.call("GET", f"/rooms/{room_id}/event/{late}")).json()["content"]["body"] == "after bob"
    # An event of another room is not found through this one.
    other_room = await alice.create_room()
    await alice.call("GET", f"/rooms/{other_room}/event/{late}", expect=404)
