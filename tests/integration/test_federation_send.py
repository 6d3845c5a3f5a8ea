"""PUT /_matrix/federation/v1/send/{txnId} on a real server, from a simulated second server
(its own key, signed requests, events signed by it): authentication, size limits, PDUs into the
room (accepted, rejected, redacted on a bad hash, ACL), idempotency, and EDUs (typing, receipts,
presence) reaching local users."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.storage import events as events_table
from tests.conftest import RunningServer, StartServer
from tests.integration.federation_helpers import (
    FED,
    RemoteServer,
    join_remote_user,
    pdu,
    services_of,
    transaction,
)
from tests.integration.room_helpers import User, new_user

OPEN = {"registration.mode": "open", "ratelimit.enabled": False, "federation.trusted_key_servers": ()}


@pytest.fixture
async def srv(start_server: StartServer) -> RunningServer:
    return await start_server(OPEN)


async def _room_with_remote_member(srv: RunningServer) -> tuple[User, str, RemoteServer, str]:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset="public_chat")
    remote = await RemoteServer.trusted_by(srv)
    bob = remote.user("bob")
    await join_remote_user(srv, room_id, bob)
    return alice, room_id, remote, bob


async def _messages(user: User, room_id: str) -> list[dict[str, Any]]:
    resp = await user.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=50")
    return [e for e in resp.json()["chunk"] if e["type"] == "m.room.message"]


# --- authentication and shape -----------------------------------------------------------------

async def test_unsigned_wrongly_signed_and_misaddressed_sends_are_401(srv: RunningServer) -> None:
    remote = await RemoteServer.trusted_by(srv)
    uri = f"{FED}/send/t1"
    body = transaction(remote.name)
    impostor = new_server_key(remote.key.key_id.split(":", 1)[1])  # same key id, other key
    cases: list[dict[str, str]] = [
        {},
        {"Authorization": remote.auth(srv, "PUT", uri, body, key=impostor)},
        {"Authorization": remote.auth(srv, "PUT", uri, body, destination="other.example")},
        {"Authorization": remote.auth(srv, "PUT", uri, {**body, "pdus": [{}]})},  # other content
    ]
    for headers in cases:
        resp = await srv.federation.put(uri, json=body, headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json()["errcode"] == "M_UNAUTHORIZED"


@pytest.mark.parametrize(("pdus", "edus"), [(51, 0), (0, 101)])
async def test_oversized_transaction_is_400(srv: RunningServer, pdus: int, edus: int) -> None:
    remote = await RemoteServer.trusted_by(srv)
    resp = await remote.send(srv, [{"room_id": "!x:y"}] * pdus, [{"edu_type": "m.typing", "content": {}}] * edus)
    assert resp.status_code == 400
    assert resp.json()["errcode"] == "M_BAD_JSON"


async def test_exactly_50_pdus_and_100_edus_are_accepted(srv: RunningServer) -> None:
    remote = await RemoteServer.trusted_by(srv)
    resp = await remote.send(srv, [{"room_id": "!unknown:y"}] * 50, [{"edu_type": "x.unknown", "content": {}}] * 100)
    assert resp.status_code == 200
    assert "pdus" in resp.json()


async def test_origin_in_body_must_be_the_signer(srv: RunningServer) -> None:
    remote = await RemoteServer.trusted_by(srv)
    resp = await remote.request(srv, "PUT", f"{FED}/send/t1", transaction("someone.else"))
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize("body", [{"origin": "x"}, {"pdus": {}}, {"pdus": [], "edus": {}}])
async def test_malformed_transaction_is_400(srv: RunningServer, body: dict[str, Any]) -> None:
    remote = await RemoteServer.trusted_by(srv)
    body = {k: (remote.name if k == "origin" else v) for k, v in body.items()}
    resp = await remote.request(srv, "PUT", f"{FED}/send/t1", body)
    assert resp.status_code == 400
    assert resp.json()["errcode"] == "M_BAD_JSON"


# --- PDUs ------------------------------------------------------------------------------------------

async def test_pdu_from_a_joined_remote_user_reaches_local_users(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    event = await remote.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "hello from afar"})
    resp = await remote.send(srv, [pdu(event)])
    assert resp.status_code == 200
    assert resp.json() == {"pdus": {event.event_id: {}}}
    messages = await _messages(alice, room_id)
    assert [(m["event_id"], m["sender"], m["content"]["body"]) for m in messages] == [
        (event.event_id, bob, "hello from afar")
    ]


async def test_repeated_txn_gets_the_same_answer_without_reprocessing(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    first = await remote.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "one"})
    resp1 = await remote.send(srv, [pdu(first)], txn_id="same")
    # Same txn id, other content: the stored answer comes back and "two" is never processed.
    second = await remote.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "two"})
    resp2 = await remote.send(srv, [pdu(second)], txn_id="same")
    assert resp1.json() == resp2.json() == {"pdus": {first.event_id: {}}}
    assert [m["content"]["body"] for m in await _messages(alice, room_id)] == ["one"]
    # Another server may use the same txn id: transactions are per origin.
    other = await RemoteServer.trusted_by(srv)
    resp3 = await other.send(srv, [], txn_id="same")
    assert resp3.json() == {"pdus": {}}


async def test_concurrent_repeats_are_processed_once(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    event = await remote.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "once"})
    answers = await asyncio.gather(*(remote.send(srv, [pdu(event)], txn_id="dup") for _ in range(4)))
    assert {a.status_code for a in answers} == {200}
    assert all(a.json() == {"pdus": {event.event_id: {}}} for a in answers)
    assert [m["content"]["body"] for m in await _messages(alice, room_id)] == ["once"]


async def test_event_failing_auth_is_processed_but_not_shown(srv: RunningServer) -> None:
    """A rejected event was processed: {} in the pdus map, as Synapse answers (SyTest "Remote
    servers should reject attempts by non-creators to set the power levels"); never shown."""
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    carol = remote.user("carol")  # never joined
    event = await remote.build(srv, room_id, carol, "m.room.message", {"msgtype": "m.text", "body": "let me in"})
    resp = await remote.send(srv, [pdu(event)])
    assert resp.status_code == 200
    assert resp.json()["pdus"] == {event.event_id: {}}
    assert await _messages(alice, room_id) == []
    held = await services_of(srv).storage.db.read(lambda c: events_table.select_event(c, event.event_id))
    assert held is not None and held.event.rejected_reason is not None


async def test_pdu_with_bad_content_hash_is_stored_redacted(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    event = await remote.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "original"})
    tampered = pdu(event)
    # The signature covers the redacted form only, so it still verifies; the hash does not.
    tampered["content"] = {"msgtype": "m.text", "body": "tampered"}
    resp = await remote.send(srv, [tampered])
    assert resp.json() == {"pdus": {event.event_id: {}}}
    (message,) = await _messages(alice, room_id)
    assert message["event_id"] == event.event_id
    assert message["content"] == {}


async def test_pdu_with_bad_signature_is_dropped_with_an_error(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    forger = RemoteServer(remote.name, new_server_key(remote.key.key_id.split(":", 1)[1]))
    event = await forger.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "forged"})
    resp = await remote.send(srv, [pdu(event)])
    assert "signature" in resp.json()["pdus"][event.event_id]["error"]
    assert await _messages(alice, room_id) == []


async def test_server_acl_denies_pdus_and_room_edus(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    await alice.call(
        "PUT", f"/rooms/{room_id}/state/m.room.server_acl/",
        {"allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": True},
    )
    event = await remote.build(srv, room_id, bob, "m.room.message", {"msgtype": "m.text", "body": "denied"})
    typing = {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob, "typing": True}}
    resp = await remote.send(srv, [pdu(event)], [typing])
    assert "server ACL" in resp.json()["pdus"][event.event_id]["error"]
    assert await _messages(alice, room_id) == []
    assert services_of(srv).typing.typing_in(room_id) == []


# --- EDUs ------------------------------------------------------------------------------------------

async def test_typing_edu_for_joined_remote_user(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    typing = services_of(srv).typing
    edu = {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob, "typing": True}}
    assert (await remote.send(srv, [], [edu])).status_code == 200
    assert typing.typing_in(room_id) == [bob]
    resp = await alice.call("GET", "/sync?timeout=0")
    ephemeral = resp.json()["rooms"]["join"][room_id]["ephemeral"]["events"]
    assert {"type": "m.typing", "content": {"user_ids": [bob]}} in ephemeral
    stop = {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob, "typing": False}}
    await remote.send(srv, [], [stop])
    assert typing.typing_in(room_id) == []


async def test_typing_edus_about_others_users_or_non_members_are_ignored(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    typing = services_of(srv).typing
    edus = [
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": alice.user_id, "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": remote.user("carol"), "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob, "typing": "yes"}},
        {"edu_type": "m.unknown", "content": {"anything": 1}},
        "not an object",
    ]
    assert (await remote.send(srv, [], edus)).status_code == 200
    assert typing.typing_in(room_id) == []


async def test_receipt_edu_reaches_local_sync(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    event_id = await alice.send(room_id, "read me")
    edu = {"edu_type": "m.receipt", "content": {room_id: {"m.read": {
        bob: {"event_ids": [event_id], "data": {"ts": 1_700_000_000_000}},
        alice.user_id: {"event_ids": [event_id], "data": {"ts": 1}},  # not theirs to send
    }}}}
    assert (await remote.send(srv, [], [edu])).status_code == 200
    resp = await alice.call("GET", "/sync?timeout=0")
    ephemeral = resp.json()["rooms"]["join"][room_id]["ephemeral"]["events"]
    receipts = [e["content"] for e in ephemeral if e["type"] == "m.receipt"]
    assert receipts == [{event_id: {"m.read": {bob: {"ts": 1_700_000_000_000}}}}]


async def test_presence_edu_updates_remote_users_presence(srv: RunningServer) -> None:
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    edu = {"edu_type": "m.presence", "content": {"push": [
        {"user_id": bob, "presence": "online", "last_active_ago": 5000, "currently_active": True,
         "status_msg": "around"},
        {"user_id": alice.user_id, "presence": "offline", "last_active_ago": 0},  # not theirs
    ]}}
    assert (await remote.send(srv, [], [edu])).status_code == 200
    resp = await alice.call("GET", f"/presence/{bob}/status")
    body = resp.json()
    assert (body["presence"], body["status_msg"], body["currently_active"]) == ("online", "around", True)
    assert 5000 <= body["last_active_ago"] < 60_000
    mine = (await alice.call("GET", f"/presence/{alice.user_id}/status")).json()
    assert mine["presence"] != "offline" or "status_msg" not in mine


async def test_a_transaction_larger_than_the_client_body_limit_is_accepted(srv: RunningServer) -> None:
    # 50 PDUs of real-world size exceed limits.max_request_bytes (1 MiB); /send has its own cap.
    remote = await RemoteServer.trusted_by(srv)
    padding = "x" * 40_000
    pdus = [{"room_id": "!unknown:y", "content": {"body": padding}} for _ in range(50)]
    resp = await remote.send(srv, pdus, [])
    assert resp.status_code == 200, resp.text
    assert "pdus" in resp.json()


async def test_a_redaction_of_another_rooms_event_is_withheld(srv: RunningServer) -> None:
    """SyTest "An event which redacts an event in a different room should be ignored": the
    redaction is accepted into its room's graph but never shown, and the target keeps its
    content."""
    alice = await new_user(srv, "alice")
    one = await alice.create_room(preset="public_chat", room_version="11")
    two = await alice.create_room(preset="public_chat", room_version="11")
    remote = await RemoteServer.trusted_by(srv)
    bob = remote.user("bob")
    for room_id in (one, two):
        await join_remote_user(srv, room_id, bob)
    msg = await remote.build(srv, one, bob, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert (await remote.send(srv, [pdu(msg)])).json() == {"pdus": {msg.event_id: {}}}
    redaction = await remote.build(srv, two, bob, "m.room.redaction", {"redacts": msg.event_id})
    assert (await remote.send(srv, [pdu(redaction)])).status_code == 200
    sentinel = await remote.build(srv, two, bob, "m.room.message", {"msgtype": "m.text", "body": "sentinel"})
    assert (await remote.send(srv, [pdu(sentinel)])).json() == {"pdus": {sentinel.event_id: {}}}
    resp = await alice.call("GET", f"/rooms/{two}/messages?dir=b&limit=50")
    ids = [e["event_id"] for e in resp.json()["chunk"]]
    assert sentinel.event_id in ids and redaction.event_id not in ids
    target = (await alice.call("GET", f"/rooms/{one}/event/{msg.event_id}")).json()
    assert target["content"]["body"] == "hi" and "redacted_because" not in target.get("unsigned", {})


async def test_a_spoofed_redaction_does_not_hide_a_later_valid_one(srv: RunningServer) -> None:
    """SyTest "Inbound federation ignores redactions from invalid servers room > v3": a remote
    user without the redact level cannot redact alice's message, and alice's own redaction
    afterwards still applies."""
    alice, room_id, remote, bob = await _room_with_remote_member(srv)
    target = await alice.send(room_id, "Hello")
    fake = await remote.build(srv, room_id, bob, "m.room.redaction", {"redacts": target})
    fake_pdu = {**pdu(fake)}
    assert (await remote.send(srv, [fake_pdu])).json() == {"pdus": {fake.event_id: {}}}
    served = (await alice.call("GET", f"/rooms/{room_id}/event/{target}")).json()
    assert served["content"]["body"] == "Hello" and "redacted_by" not in served["unsigned"]
    # Other servers get it whole too.
    (fetched,) = (await remote.request(srv, "GET", f"{FED}/event/{target}")).json()["pdus"]
    assert fetched["content"]["body"] == "Hello"
    # /sync reads the same rule: the target is served whole there too.
    timeline = (await alice.call("GET", "/sync")).json()["rooms"]["join"][room_id]["timeline"]["events"]
    synced = next(e for e in timeline if e["event_id"] == target)
    assert synced["content"]["body"] == "Hello" and "redacted_by" not in synced["unsigned"]
    real = (await alice.call("PUT", f"/rooms/{room_id}/redact/{target}/r1", {})).json()["event_id"]
    served = (await alice.call("GET", f"/rooms/{room_id}/event/{target}")).json()
    assert served["content"] == {} and served["unsigned"]["redacted_by"] == real
