"""Membership across two real dendrite-lite servers over TLS on loopback: joins (v10 by room id,
v12 with ?server_name=), invites both ways with rejection, knocks, and the error cases of the
federation membership endpoints (signed requests from one server to the other)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from dendrite_lite.api.app import Services
from dendrite_lite.federation.client import FederationClient, RemoteError
from tests.conftest import RunningServer, StartServer
from tests.integration.push_gateway_fake import fake_gateway
from tests.integration.room_helpers import User, new_user
from tests.interop.synapse_server import tls_overrides

OPEN = {"registration.mode": "open", "ratelimit.enabled": False}
V1 = "/_matrix/federation/v1"


def _services(srv: RunningServer) -> Services:
    svc = srv.app().extensions["dendrite_lite"]
    assert isinstance(svc, Services)
    return svc


def _client(srv: RunningServer) -> FederationClient:
    client = _services(srv).federation_client
    assert client is not None
    return client


def name(srv: RunningServer) -> str:
    return srv.config.server.server_name


@pytest.fixture
async def pair(start_server: StartServer, tmp_path: Path) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    servers = []
    for tag in ("a", "b"):
        overrides = tls_overrides(tmp_path / f"tls-{tag}")
        if overrides is None:
            pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
        srv = await start_server({**overrides, **OPEN})
        # The client listener serves the self-signed certificate too.
        await srv.client.aclose()
        srv.client = httpx.AsyncClient(base_url=srv.listening.client_url, timeout=20, verify=False)
        await srv.federation.aclose()
        assert srv.listening.federation_url is not None
        srv.federation = httpx.AsyncClient(base_url=srv.listening.federation_url, timeout=20, verify=False)
        servers.append(srv)
    yield servers[0], servers[1]
    # Each holds connections to the other: close them so neither TLS shutdown waits on the other.
    for srv in servers:
        await _client(srv).aclose()


async def sync_rooms(user: User) -> dict[str, Any]:
    return (await user.call("GET", "/sync", params={"timeout": "0"})).json()["rooms"]


async def member_state(user: User, room_id: str, target: str) -> dict[str, Any]:
    return (await user.state(room_id, "m.room.member", target)).json()


async def test_remote_user_joins_a_v10_room_by_id(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version="10", name="Ten")
    assert room_id.endswith(":" + name(a))
    resp = await bob.call("POST", f"/join/{quote(room_id)}", {})
    assert resp.json() == {"room_id": room_id}
    # The resident server took the join into its room...
    assert (await member_state(alice, room_id, bob.user_id))["membership"] == "join"
    # ...and the joining server holds the room: its state and our join as the first event.
    rooms = await sync_rooms(bob)
    joined = rooms["join"][room_id]
    state = {(e["type"], e["state_key"]): e for e in joined["state"]["events"]}
    assert state[("m.room.name", "")]["content"] == {"name": "Ten"}
    assert state[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    assert [e["type"] for e in joined["timeline"]["events"]][-1] == "m.room.member"
    assert joined["timeline"]["events"][-1]["state_key"] == bob.user_id
    assert (await bob.call("GET", "/joined_rooms")).json()["joined_rooms"] == [room_id]
    members = (await bob.call("GET", f"/rooms/{room_id}/joined_members")).json()["joined"]
    assert sorted(members) == sorted([alice.user_id, bob.user_id])


async def test_v12_join_needs_a_server_name(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version="12")
    assert ":" not in room_id
    resp = await bob.call("POST", f"/join/{quote(room_id)}", {}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    await bob.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": name(a)})
    assert (await member_state(alice, room_id, bob.user_id))["membership"] == "join"
    assert room_id in (await sync_rooms(bob))["join"]


async def test_invite_across_servers_then_reject(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(preset="private_chat", name="Secret")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
    invited = await member_state(alice, room_id, bob.user_id)
    assert invited["membership"] == "invite"
    invite = (await sync_rooms(bob))["invite"][room_id]["invite_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in invite}
    assert by_type[("m.room.name", "")]["content"] == {"name": "Secret"}
    assert by_type[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
    assert by_type[("m.room.member", bob.user_id)]["sender"] == alice.user_id
    # Rejecting goes to the inviting server (make_leave/send_leave).
    await bob.call("POST", f"/rooms/{room_id}/leave", {})
    assert (await member_state(alice, room_id, bob.user_id))["membership"] == "leave"
    assert room_id not in (await sync_rooms(bob))["invite"]


async def test_create_room_invites_a_remote_user_through_their_server(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """Element starts a DM with one /createRoom naming the other user in `invite`: a user on
    another server must get the invite through that server, marked direct."""
    a, b = pair
    alice, local, bob = await new_user(a, "alice"), await new_user(a, "carol"), await new_user(b, "bob")
    room_id = await alice.create_room(
        preset="trusted_private_chat", is_direct=True, invite=[bob.user_id, local.user_id]
    )
    invited = await member_state(alice, room_id, bob.user_id)
    assert invited["membership"] == "invite" and invited["is_direct"] is True
    invite = (await sync_rooms(bob))["invite"][room_id]["invite_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in invite}
    member = by_type[("m.room.member", bob.user_id)]
    assert (member["sender"], member["content"]["membership"]) == (alice.user_id, "invite")
    assert member["content"]["is_direct"] is True
    # The local invitee is invited in the creation events, as before.
    assert (await member_state(alice, room_id, local.user_id))["membership"] == "invite"
    await bob.call("POST", f"/join/{quote(room_id)}", {})
    assert (await member_state(alice, room_id, bob.user_id))["membership"] == "join"


async def test_create_room_with_an_unreachable_invitee_still_creates_the_room(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = pair
    alice = await new_user(a, "alice")
    nobody = "@nobody:127.0.0.1:1"  # nothing listens on port 1
    room_id = await alice.create_room(preset="private_chat", invite=[nobody])
    resp = await alice.call("GET", f"/rooms/{room_id}/state/m.room.member/{nobody}", expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    assert room_id in (await alice.call("GET", "/joined_rooms")).json()["joined_rooms"]


async def test_invite_then_join_an_invite_only_room_both_ways(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    for host, guest in ((a, b), (b, a)):
        owner, visitor = await new_user(host, "owner"), await new_user(guest, "visitor")
        room_id = await owner.create_room(preset="private_chat")
        # Not invited yet: the resident server refuses the join.
        resp = await visitor.call(
            "POST", f"/join/{quote(room_id)}", {}, expect=403, params={"via": name(host)}
        )
        assert resp.json()["errcode"] == "M_FORBIDDEN"
        await owner.call("POST", f"/rooms/{room_id}/invite", {"user_id": visitor.user_id})
        # No via needed now: the inviting server is asked.
        await visitor.call("POST", f"/rooms/{room_id}/join", {})
        assert (await member_state(owner, room_id, visitor.user_id))["membership"] == "join"
        assert room_id in (await sync_rooms(visitor))["join"]


async def test_knock_on_a_remote_room(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(
        room_version="10", name="Knock here",
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    resp = await bob.call("POST", f"/knock/{quote(room_id)}", {"reason": "let me in"})
    assert resp.json() == {"room_id": room_id}
    knock = await member_state(alice, room_id, bob.user_id)
    assert knock == {"membership": "knock", "reason": "let me in"} | {
        k: v for k, v in knock.items() if k not in ("membership", "reason")
    }
    state = (await sync_rooms(bob))["knock"][room_id]["knock_state"]["events"]
    assert {"type": "m.room.name", "state_key": "", "sender": alice.user_id,
            "content": {"name": "Knock here"}} in state


# --- the endpoints' error cases (signed requests from b to a) -------------------------------------

async def _remote_error(call: Any) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await call
    return info.value


async def test_make_join_errors(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    alice = await new_user(a, "alice")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    fed = _client(b)
    path = f"{V1}/make_join/{quote(room_id)}"
    # A user of another server than the origin: 403.
    err = await _remote_error(fed.get_json(name(a), f"{path}/{quote('@x:elsewhere.example')}", query={"ver": ["10"]}))
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")
    # The room's version is not among ours: 400 M_INCOMPATIBLE_ROOM_VERSION naming it.
    user = f"@x:{name(b)}"
    err = await _remote_error(fed.get_json(name(a), f"{path}/{quote(user)}", query={"ver": ["1", "2"]}))
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert err.body["room_version"] == "10"
    # No ver at all means v1 only.
    err = await _remote_error(fed.get_json(name(a), f"{path}/{quote(user)}"))
    assert err.errcode == "M_INCOMPATIBLE_ROOM_VERSION"
    # A room the server is not in.
    err = await _remote_error(
        fed.get_json(name(a), f"{V1}/make_join/{quote('!nope:' + name(a))}/{quote(user)}", query={"ver": ["10"]})
    )
    assert (err.status, err.errcode) == (404, "M_NOT_FOUND")
    # A good request gets the template.
    answer = await fed.get_json(name(a), f"{path}/{quote(user)}", query={"ver": ["9", "10"]})
    assert answer["room_version"] == "10"
    event = answer["event"]
    assert (event["type"], event["sender"], event["state_key"], event["room_id"]) == (
        "m.room.member", user, user, room_id
    )
    assert event["content"] == {"membership": "join"}
    assert "signatures" not in event and "hashes" not in event
    # Unsigned requests are refused.
    resp = await a.federation.get(f"{path}/{quote(user)}", params={"ver": "10"})
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_send_join_with_bad_events(pair: tuple[RunningServer, RunningServer]) -> None:
    from dendrite_lite.events.pdu import event_from_pdu
    from dendrite_lite.events.room_versions import get_room_version
    from dendrite_lite.events.signing import hash_and_sign_event

    a, b = pair
    alice = await new_user(a, "alice")
    public = await alice.create_room(preset="public_chat", room_version="10")
    private = await alice.create_room(preset="private_chat", room_version="10")
    fed, key, rv = _client(b), b.key, get_room_version("10")
    user = f"@x:{name(b)}"

    async def signed_join(room_id: str, **change: Any) -> dict[str, Any]:
        # The template of the public room (the private one refuses a template to the uninvited).
        t = await fed.get_json(
            name(a), f"{V1}/make_join/{quote(public)}/{quote(user)}", query={"ver": ["10"]}
        )
        pdu = {**t["event"], "room_id": room_id, **change}
        return hash_and_sign_event(pdu, rv, name(b), key)

    async def send(pdu: dict[str, Any], event_id: str | None = None) -> RemoteError:
        eid = event_id or event_from_pdu(pdu, rv).event_id
        return await _remote_error(
            fed.put_json(name(a), f"/_matrix/federation/v2/send_join/{quote(pdu['room_id'])}/{quote(eid)}", pdu)
        )

    leave = await signed_join(public, content={"membership": "leave"})
    assert (await send(leave)).status == 400
    # On behalf of another server's user, or without the origin's hash and signature: 403, as
    # Synapse answers (SyTest "Inbound /v1/send_join rejects incorrectly-signed joins").
    other_sender = await signed_join(public, sender="@y:elsewhere.example", state_key="@y:elsewhere.example")
    assert ((err := await send(other_sender)).status, err.errcode) == (403, "M_FORBIDDEN")
    unsigned = {k: v for k, v in (await signed_join(public)).items() if k not in ("hashes", "signatures")}
    assert ((err := await send(unsigned)).status, err.errcode) == (403, "M_FORBIDDEN")
    good = await signed_join(public)
    assert (await send(good, "$not-its-id")).status == 400
    tampered = {**good, "signatures": {name(b): {k: "AAAA" for k in good["signatures"][name(b)]}}}
    assert (await send(tampered)).status in (400, 403)
    # A join the auth rules refuse: the private room needs an invite (its auth events are those
    # of the public room too, so the event is rejected either way).
    refused = await send(await signed_join(private))
    assert refused.status == 403 and refused.errcode == "M_FORBIDDEN"
    # The good one is accepted and answered with the state and auth chain.
    answer = await fed.put_json(
        name(a),
        f"/_matrix/federation/v2/send_join/{quote(public)}/{quote(event_from_pdu(good, rv).event_id)}",
        good,
    )
    types = sorted({e["type"] for e in answer["state"]})
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.member"} <= set(types)
    assert answer["members_omitted"] is False
    assert all(e["room_id"] == public for e in answer["auth_chain"])


async def test_send_join_auth_chain_comes_oldest_first(pair: tuple[RunningServer, RunningServer]) -> None:
    """A replaced power levels event comes before its successor in the auth chain, so a joining
    server that reads the chain and then the state in order keeps the current one (SyTest
    36state 'Outbound federation requests missing prev_events...', whose client does so)."""
    from dendrite_lite.events.pdu import event_from_pdu
    from dendrite_lite.events.room_versions import get_room_version
    from dendrite_lite.events.signing import hash_and_sign_event

    a, b = pair
    alice = await new_user(a, "alice")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    old_pl = (await alice.state(room_id, "m.room.power_levels", "", params={"format": "event"})).json()
    content = {**old_pl["content"], "users": {**old_pl["content"]["users"], f"@x:{name(b)}": 100}}
    resp = await alice.call("PUT", f"/rooms/{room_id}/state/m.room.power_levels/", content)
    new_pl = resp.json()["event_id"]
    fed, rv, user = _client(b), get_room_version("10"), f"@x:{name(b)}"
    t = await fed.get_json(name(a), f"{V1}/make_join/{quote(room_id)}/{quote(user)}", query={"ver": ["10"]})
    pdu = hash_and_sign_event(t["event"], rv, name(b), b.key)
    eid = event_from_pdu(pdu, rv).event_id
    answer = await fed.put_json(name(a), f"/_matrix/federation/v2/send_join/{quote(room_id)}/{quote(eid)}", pdu)
    chain = [event_from_pdu(e, rv) for e in answer["auth_chain"]]
    ids = [e.event_id for e in chain]
    assert old_pl["event_id"] in ids and new_pl in ids
    assert ids.index(old_pl["event_id"]) < ids.index(new_pl)
    assert [e.depth for e in chain] == sorted(e.depth for e in chain)
    # SyTest's reading: each event once (its first appearance), the last of each key wins.
    current: dict[tuple[str, str | None], str] = {}
    seen: set[str] = set()
    for e in [*chain, *(event_from_pdu(s, rv) for s in answer["state"])]:
        if e.event_id not in seen:
            seen.add(e.event_id)
            current[(e.type, e.state_key)] = e.event_id
    assert current[("m.room.power_levels", "")] == new_pl


async def test_deprecated_v1_send_join_and_send_leave(pair: tuple[RunningServer, RunningServer]) -> None:
    """v1 send_join/send_leave are still served for older servers (Synapse does): the v2 answer
    wrapped in `[200, body]` (joins-v1.yaml, leaving-v1.yaml)."""
    from dendrite_lite.events.pdu import event_from_pdu
    from dendrite_lite.events.room_versions import get_room_version
    from dendrite_lite.events.signing import hash_and_sign_event

    a, b = pair
    alice = await new_user(a, "alice")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    fed, rv, user = _client(b), get_room_version("10"), f"@x:{name(b)}"

    async def send(membership: str) -> Any:
        t = await fed.get_json(name(a), f"{V1}/make_{membership}/{quote(room_id)}/{quote(user)}", query={"ver": ["10"]})
        pdu = hash_and_sign_event(t["event"], rv, name(b), b.key)
        eid = event_from_pdu(pdu, rv).event_id
        return await fed.put_json(name(a), f"{V1}/send_{membership}/{quote(room_id)}/{quote(eid)}", pdu)

    status, answer = await send("join")
    assert status == 200 and answer["origin"] == name(a)
    assert "m.room.create" in {e["type"] for e in answer["state"]} and answer["auth_chain"]
    assert (await member_state(alice, room_id, user))["membership"] == "join"
    assert await send("leave") == [200, {}]
    assert (await member_state(alice, room_id, user))["membership"] == "leave"


async def test_invite_endpoint_errors(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    fed = _client(b)
    bob = await new_user(a, "bob")
    path = f"/_matrix/federation/v2/invite/{quote('!r:' + name(b))}/{quote('$e')}"
    err = await _remote_error(fed.put_json(name(a), path, {"room_version": "99", "event": {}, "invite_room_state": []}))
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert err.body["room_version"] == "99"
    err = await _remote_error(fed.put_json(name(a), path, {"room_version": "10", "event": {"type": "m.room.member"}}))
    assert err.status == 400
    assert bob.user_id  # the invitee exists; the malformed event is what fails


async def test_messages_backfills_history_from_before_the_join(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    for i in range(5):
        await alice.send(room_id, f"old {i}")
    await bob.call("POST", f"/join/{quote(room_id)}", {})
    # Bob's server holds nothing before his join; paginating back fetches it from alice's.
    resp = await bob.call("GET", f"/rooms/{quote(room_id)}/messages", params={"dir": "b", "limit": "50"})
    chunk = resp.json()["chunk"]
    bodies = [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]
    assert bodies == [f"old {i}" for i in reversed(range(5))]
    types = [e["type"] for e in chunk]
    assert types[0] == "m.room.member" and chunk[0]["state_key"] == bob.user_id
    assert types[-1] == "m.room.create"
    # Held now: the same page again needs no other server and gives the same events.
    again = await bob.call("GET", f"/rooms/{quote(room_id)}/messages", params={"dir": "b", "limit": "50"})
    assert [e["event_id"] for e in again.json()["chunk"]] == [e["event_id"] for e in chunk]


async def test_an_invite_over_federation_is_pushed(pair: tuple[RunningServer, RunningServer]) -> None:
    """The invite arrives out of band (we are not in the room) and still goes through the push
    rules: .m.rule.invite_for_me notifies the invitee's devices."""
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    async with fake_gateway() as gateway:
        pusher = {
            "kind": "http", "app_id": "org.example.app", "pushkey": "key-1", "app_display_name": "A",
            "device_display_name": "D", "lang": "en", "data": {"url": gateway.url},
        }
        assert (await bob.call("POST", "/pushers/set", pusher)).status_code == 200
        room_id = await alice.create_room(preset="private_chat", name="Secret")
        await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
        note = (await gateway.next(10))["notification"]
    assert (note["room_id"], note["type"], note["sender"]) == (room_id, "m.room.member", alice.user_id)
    assert note["membership"] == "invite" and note["user_is_target"] is True
    assert note["room_name"] == "Secret"  # from the state the invite carries
    listed = (await bob.call("GET", "/notifications")).json()["notifications"]
    assert [n["room_id"] for n in listed] == [room_id]
