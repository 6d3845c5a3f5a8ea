"""The federation read endpoints of a real server, asked by a simulated second server:
/event, /state, /state_ids, /event_auth, /backfill, /get_missing_events, /timestamp_to_event
(membership and ACL checks, history visibility for servers), and /query/profile, /query/directory."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import pytest

from dendrite_lite.events.hashes import check_content_hash
from dendrite_lite.events.signing import verify_event_signatures
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.crypto.signing import InMemoryKeyStore, ServerVerifyKey
from tests.conftest import RunningServer, StartServer
from dendrite_lite.storage import events as events_table
from tests.integration.federation_helpers import FED, RemoteServer, join_remote_user, pdu, services_of
from tests.integration.room_helpers import User, new_user

OPEN = {"registration.mode": "open", "ratelimit.enabled": False, "federation.trusted_key_servers": ()}


@pytest.fixture
async def srv(start_server: StartServer) -> RunningServer:
    return await start_server(OPEN)


def q(value: str) -> str:
    return quote(value, safe="")


async def _room(srv: RunningServer, **create: Any) -> tuple[User, str, RemoteServer]:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset="public_chat", **create)
    remote = await RemoteServer.trusted_by(srv)
    await join_remote_user(srv, room_id, remote.user("bob"))
    return alice, room_id, remote


async def _state_ids(alice: User, room_id: str) -> dict[tuple[str, str], str]:
    resp = await alice.call("GET", f"/rooms/{room_id}/state")
    return {(e["type"], e["state_key"]): e["event_id"] for e in resp.json()}


def _check_signed_by_us(srv: RunningServer, pdu: dict[str, Any], version: str = "10") -> None:
    rv = get_room_version(version)
    store = InMemoryKeyStore()
    store.add(ServerVerifyKey(srv.config.server.server_name, srv.key.key_id, srv.key.verify_key, 2**62))
    verify_event_signatures(event_from_pdu(pdu, rv), rv, store)


# --- /event -------------------------------------------------------------------------------------

async def test_get_event_returns_the_signed_pdu(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    event_id = await alice.send(room_id, "fetch me")
    resp = await remote.request(srv, "GET", f"{FED}/event/{q(event_id)}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["origin"] == srv.config.server.server_name and isinstance(body["origin_server_ts"], int)
    (pdu,) = body["pdus"]
    assert pdu["content"]["body"] == "fetch me" and pdu["room_id"] == room_id
    assert "event_id" not in pdu  # v3+: the id is the hash
    assert check_content_hash(pdu)
    version = (await alice.call("GET", f"/rooms/{room_id}/state/m.room.create/")).json().get("room_version", "1")
    _check_signed_by_us(srv, pdu, version)


async def test_unknown_event_is_404(srv: RunningServer) -> None:
    _, _, remote = await _room(srv)
    resp = await remote.request(srv, "GET", f"{FED}/event/{q('$nope')}")
    assert resp.status_code == 404
    assert resp.json()["errcode"] == "M_NOT_FOUND"


async def test_server_not_in_room_is_403(srv: RunningServer) -> None:
    alice, room_id, _ = await _room(srv)
    event_id = await alice.send(room_id, "private")
    stranger = await RemoteServer.trusted_by(srv)
    for uri in (
        f"{FED}/event/{q(event_id)}",
        f"{FED}/state_ids/{q(room_id)}?event_id={q(event_id)}",
        f"{FED}/state/{q(room_id)}?event_id={q(event_id)}",
        f"{FED}/event_auth/{q(room_id)}/{q(event_id)}",
        f"{FED}/backfill/{q(room_id)}?v={q(event_id)}&limit=5",
        f"{FED}/timestamp_to_event/{q(room_id)}?ts=0&dir=f",
        f"{FED}/state_ids/{q('!unknown:nowhere')}?event_id={q(event_id)}",
    ):
        resp = await stranger.request(srv, "GET", uri)
        assert resp.status_code == 403, uri
        assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await stranger.request(
        srv, "POST", f"{FED}/get_missing_events/{q(room_id)}",
        {"earliest_events": [], "latest_events": [event_id]},
    )
    assert resp.status_code == 403


async def test_unsigned_read_is_401(srv: RunningServer) -> None:
    alice, room_id, _ = await _room(srv)
    resp = await srv.federation.get(f"{FED}/state_ids/{q(room_id)}?event_id=x")
    assert resp.status_code == 401
    assert resp.json()["errcode"] == "M_UNAUTHORIZED"


# --- state ---------------------------------------------------------------------------------------

async def test_state_ids_and_state_are_the_state_before_the_event(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    before = await _state_ids(alice, room_id)
    topic = (await alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "t"})).json()["event_id"]
    resp = await remote.request(srv, "GET", f"{FED}/state_ids/{q(room_id)}?event_id={q(topic)}")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body["pdu_ids"]) == set(before.values())
    create_id = before[("m.room.create", "")]
    assert create_id in body["auth_chain_ids"] and topic not in body["auth_chain_ids"]

    message = await alice.send(room_id, "after the topic")
    resp = await remote.request(srv, "GET", f"{FED}/state/{q(room_id)}?event_id={q(message)}")
    full = resp.json()
    assert {(p["type"], p["state_key"]) for p in full["pdus"]} == set(before) | {("m.room.topic", "")}
    assert ("m.room.create", "") in {(p["type"], p["state_key"]) for p in full["auth_chain"]}
    assert all(check_content_hash(p) for p in full["pdus"] + full["auth_chain"])


async def test_state_ids_unknown_event_is_404_and_missing_param_400(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    resp = await remote.request(srv, "GET", f"{FED}/state_ids/{q(room_id)}?event_id={q('$missing')}")
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
    resp = await remote.request(srv, "GET", f"{FED}/state_ids/{q(room_id)}")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_MISSING_PARAM")


async def test_state_at_a_rejected_event_is_404(srv: RunningServer) -> None:
    """As from Synapse (SyTest "/state_ids returns M_NOT_FOUND for a rejected message event"):
    a rejected event is not part of the room, and no state is served at it."""
    alice, room_id, remote = await _room(srv)
    stranger = await remote.build(srv, room_id, remote.user("stranger"), "m.room.message", {"body": "x"})
    assert (await remote.send(srv, [pdu(stranger)])).status_code == 200
    held = await services_of(srv).storage.db.read(lambda c: events_table.select_event(c, stranger.event_id))
    assert held is not None and held.event.rejected_reason is not None
    for endpoint in ("state", "state_ids"):
        resp = await remote.request(srv, "GET", f"{FED}/{endpoint}/{q(room_id)}?event_id={q(stranger.event_id)}")
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND"), endpoint


async def test_event_auth_is_the_auth_chain(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    message = await alice.send(room_id, "auth me")
    resp = await remote.request(srv, "GET", f"{FED}/event_auth/{q(room_id)}/{q(message)}")
    assert resp.status_code == 200
    chain = resp.json()["auth_chain"]
    types = {(p["type"], p.get("state_key")) for p in chain}
    assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", alice.user_id)} <= types
    assert ("m.room.message", None) not in types
    assert len(chain) == len({p["hashes"]["sha256"] for p in chain})


# --- backfill / get_missing_events -----------------------------------------------------------------

async def test_backfill_walks_back_from_v_deepest_first(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    ids = [await alice.send(room_id, f"m{i}") for i in range(5)]
    resp = await remote.request(srv, "GET", f"{FED}/backfill/{q(room_id)}?v={q(ids[-1])}&limit=3")
    assert resp.status_code == 200
    body = resp.json()
    assert [p["content"]["body"] for p in body["pdus"]] == ["m4", "m3", "m2"]
    assert body["origin"] == srv.config.server.server_name
    depths = [p["depth"] for p in body["pdus"]]
    assert depths == sorted(depths, reverse=True)


async def test_backfill_needs_v_and_limit(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    resp = await remote.request(srv, "GET", f"{FED}/backfill/{q(room_id)}?limit=3")
    assert resp.status_code == 400
    resp = await remote.request(srv, "GET", f"{FED}/backfill/{q(room_id)}?v=x&limit=many")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_get_missing_events_between_earliest_and_latest(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    ids = [await alice.send(room_id, f"m{i}") for i in range(6)]
    resp = await remote.request(
        srv, "POST", f"{FED}/get_missing_events/{q(room_id)}",
        {"earliest_events": [ids[1]], "latest_events": [ids[5]], "limit": 10, "min_depth": 0},
    )
    assert resp.status_code == 200
    assert [p["content"]["body"] for p in resp.json()["events"]] == ["m2", "m3", "m4"]
    resp = await remote.request(
        srv, "POST", f"{FED}/get_missing_events/{q(room_id)}",
        {"earliest_events": [], "latest_events": [ids[5]], "limit": 2},
    )
    assert [p["content"]["body"] for p in resp.json()["events"]] == ["m3", "m4"]
    resp = await remote.request(srv, "POST", f"{FED}/get_missing_events/{q(room_id)}", {"latest_events": "x"})
    assert resp.status_code == 400


async def test_history_hidden_from_servers_is_served_redacted(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}
    ])
    secret = await alice.send(room_id, "before you came")
    remote = await RemoteServer.trusted_by(srv)
    await join_remote_user(srv, room_id, remote.user("bob"))
    later = await alice.send(room_id, "after you came")
    resp = await remote.request(srv, "GET", f"{FED}/backfill/{q(room_id)}?v={q(later)}&limit=20")
    by_body = {p["content"].get("body"): p for p in resp.json()["pdus"] if p["type"] == "m.room.message"}
    assert "after you came" in by_body
    assert "before you came" not in by_body
    hidden = [p for p in resp.json()["pdus"] if p["type"] == "m.room.message" and not p["content"]]
    assert len(hidden) == 1  # the earlier message: present for the DAG, content withheld
    (pdu,) = (await remote.request(srv, "GET", f"{FED}/event/{q(secret)}")).json()["pdus"]
    assert pdu["content"] == {} and pdu["hashes"]  # redacted, still verifiable
    assert not check_content_hash(pdu)


# --- ACL, timestamp_to_event --------------------------------------------------------------------

async def test_acl_denied_server_gets_403_even_when_joined(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    acl = (await alice.call(
        "PUT", f"/rooms/{room_id}/state/m.room.server_acl/", {"allow": ["*"], "allow_ip_literals": False}
    )).json()["event_id"]
    for uri in (
        f"{FED}/state_ids/{q(room_id)}?event_id={q(acl)}",
        f"{FED}/backfill/{q(room_id)}?v={q(acl)}&limit=5",
        f"{FED}/event_auth/{q(room_id)}/{q(acl)}",
    ):
        resp = await remote.request(srv, "GET", uri)
        assert resp.status_code == 403, uri
        assert "ACL" in resp.json()["error"]
    # The membership endpoints too (§Server ACLs), and /get_missing_events.
    user = q(remote.user("bob"))
    calls: list[tuple[str, str, Any]] = [
        ("GET", f"{FED}/make_join/{q(room_id)}/{user}?ver=10", None),
        ("GET", f"{FED}/make_leave/{q(room_id)}/{user}", None),
        ("PUT", f"{FED}/send_join/{q(room_id)}/{q('$x')}", {}),
        ("PUT", f"/_matrix/federation/v2/send_leave/{q(room_id)}/{q('$x')}", {}),
        ("PUT", f"/_matrix/federation/v2/invite/{q(room_id)}/{q('$x')}", {"room_version": "10", "event": {}}),
        ("POST", f"{FED}/get_missing_events/{q(room_id)}", {}),
    ]
    for method, uri, body in calls:
        resp = await remote.request(srv, method, uri, body)
        assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN"), uri


async def test_an_invite_for_an_unknown_user_is_countersigned_and_kept_nowhere(srv: RunningServer) -> None:
    # As Synapse (SyTest 50server-acl-endpoints "Banned servers cannot /invite", control step):
    # invites-v2.yaml has no answer for an unknown invitee.
    _, room_id, remote = await _room(srv, room_version="10")
    nobody = f"@nobody:{srv.config.server.server_name}"
    invite = await remote.build(srv, room_id, remote.user("bob"), "m.room.member", {"membership": "invite"}, nobody)
    resp = await remote.request(
        srv, "PUT", f"/_matrix/federation/v2/invite/{q(room_id)}/{q(invite.event_id)}",
        {"room_version": "10", "event": pdu(invite), "invite_room_state": []},
    )
    assert resp.status_code == 200, resp.text
    signatures = resp.json()["event"]["signatures"]
    assert set(signatures) == {remote.name, srv.config.server.server_name}
    stored = await services_of(srv).storage.db.read(lambda c: events_table.select_event(c, invite.event_id))
    assert stored is None


async def test_get_missing_events_reads_absent_lists_as_empty(srv: RunningServer) -> None:
    _, room_id, remote = await _room(srv)
    resp = await remote.request(srv, "POST", f"{FED}/get_missing_events/{q(room_id)}", {})
    assert (resp.status_code, resp.json()) == (200, {"events": []})
    resp = await remote.request(srv, "POST", f"{FED}/get_missing_events/{q(room_id)}", {"latest_events": "x"})
    assert resp.status_code == 400


async def test_timestamp_to_event(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    # The room's setup events may share a millisecond with `start`; leave a gap so the first
    # event at or after `start` can only be the message.
    await asyncio.sleep(0.02)
    start = int(time.time() * 1000)
    first = await alice.send(room_id, "first")
    resp = await remote.request(srv, "GET", f"{FED}/timestamp_to_event/{q(room_id)}?ts={start}&dir=f")
    assert resp.status_code == 200
    assert resp.json()["event_id"] == first and resp.json()["origin_server_ts"] >= start
    resp = await remote.request(srv, "GET", f"{FED}/timestamp_to_event/{q(room_id)}?ts={start + 10**9}&dir=f")
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
    resp = await remote.request(srv, "GET", f"{FED}/timestamp_to_event/{q(room_id)}?ts=1&dir=x")
    assert resp.status_code == 400


# --- queries ---------------------------------------------------------------------------------------

async def test_query_profile(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice A."})
    remote = await RemoteServer.trusted_by(srv)
    base = f"{FED}/query/profile?user_id={q(alice.user_id)}"
    resp = await remote.request(srv, "GET", base)
    assert resp.status_code == 200 and resp.json() == {"displayname": "Alice A."}
    resp = await remote.request(srv, "GET", base + "&field=displayname")
    assert resp.json() == {"displayname": "Alice A."}
    resp = await remote.request(srv, "GET", base + "&field=avatar_url")
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
    resp = await remote.request(srv, "GET", f"{FED}/query/profile?user_id={q('@ghost:' + srv.config.server.server_name)}")
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
    resp = await remote.request(srv, "GET", f"{FED}/query/profile?user_id={q('@x:elsewhere.org')}")
    assert resp.status_code == 400
    assert (await srv.federation.get(base)).status_code == 401
    # An origin with a non-numeric port is no server name: 400, as Synapse (SyTest "Non-numeric
    # ports in server names are rejected").
    resp = await RemoteServer("localhost:http").request(srv, "GET", base + "&field=displayname")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_UNAUTHORIZED")


async def test_query_directory(srv: RunningServer) -> None:
    alice, room_id, remote = await _room(srv)
    us = srv.config.server.server_name
    alias = f"#lobby:{us}"
    await alice.call("PUT", f"/directory/room/{q(alias)}", {"room_id": room_id})
    resp = await remote.request(srv, "GET", f"{FED}/query/directory?room_alias={q(alias)}")
    assert resp.status_code == 200
    assert resp.json() == {"room_id": room_id, "servers": [us, remote.name]}
    resp = await remote.request(srv, "GET", f"{FED}/query/directory?room_alias={q('#nothing:' + us)}")
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_events_of_an_erased_user_go_out_redacted(srv: RunningServer) -> None:
    """SyTest "Inbound federation redacts events from erased users": after deactivation with
    erase=true, other servers get the user's events redacted (as from Synapse); without
    erase they stay whole."""
    from tests.integration.account_helpers import V3, uia_password

    alice, room_id, remote = await _room(srv)
    carol = await new_user(srv, "carol")
    await carol.call("POST", f"/join/{room_id}", {})
    erased_msg, kept_msg = await alice.send(room_id, "body1"), await carol.send(room_id, "body2")

    async def body_of(event_id: str) -> Any:
        (got,) = (await remote.request(srv, "GET", f"{FED}/event/{q(event_id)}")).json()["pdus"]
        return got["content"].get("body")

    assert await body_of(erased_msg) == "body1"
    for user, erase in ((alice, True), (carol, False)):
        name = user.user_id[1:].split(":")[0]
        resp = await uia_password(srv.client, "POST", f"{V3}/account/deactivate", user.token, name, {"erase": erase})
        assert resp.status_code == 200, resp.text
    assert await body_of(erased_msg) is None
    assert await body_of(kept_msg) == "body2"
