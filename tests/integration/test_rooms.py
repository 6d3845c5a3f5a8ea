"""POST /createRoom, membership endpoints, joined_rooms, members, joined_members over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import SERVER_NAME, User, new_user
from tests.spec_schema import assert_matches_operation

CS = "client-server/"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("rooms")) as s:
        yield s


async def _pair(srv: RunningServer) -> tuple[User, User]:
    return await new_user(srv, "alice"), await new_user(srv, "bob")


def _members(resp) -> dict[str, str]:
    return {e["state_key"]: e["content"]["membership"] for e in resp.json()["chunk"]}


async def test_create_room_with_alias_name_topic_and_profile(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice A"})
    resp = await alice.call(
        "POST", "/createRoom",
        {"room_alias_name": "lobby-x", "name": "Lobby", "topic": "chat", "preset": "public_chat"},
    )
    assert_matches_operation(CS + "create_room.yaml", "/createRoom", "post", 200, resp.json())
    room_id = resp.json()["room_id"]
    alias = f"#lobby-x:{SERVER_NAME}"
    assert (await alice.state(room_id, "m.room.canonical_alias")).json() == {"alias": alias}
    assert (await alice.state(room_id, "m.room.name")).json() == {"name": "Lobby"}
    member = (await alice.state(room_id, "m.room.member", alice.user_id)).json()
    assert member == {"membership": "join", "displayname": "Alice A"}
    resolved = await alice.call("GET", f"/directory/room/{alias.replace('#', '%23')}")
    assert resolved.json() == {"room_id": room_id, "servers": [SERVER_NAME]}
    # The same alias again: taken.
    taken = await alice.call("POST", "/createRoom", {"room_alias_name": "lobby-x"}, expect=400)
    assert taken.json()["errcode"] == "M_ROOM_IN_USE"
    bad = await alice.call("POST", "/createRoom", {"room_alias_name": "a:b"}, expect=400)
    assert bad.json()["errcode"] == "M_INVALID_PARAM"
    bad = await alice.call("POST", "/createRoom", {"invite": ["not-a-user"]}, expect=400)
    assert bad.json()["errcode"] == "M_BAD_JSON"


@pytest.mark.parametrize(
    "preset, guest_access",
    [("public_chat", None), ("private_chat", "can_join"), ("trusted_private_chat", "can_join")],
)
async def test_create_room_state_per_preset(
    srv: RunningServer, preset: str, guest_access: str | None
) -> None:
    """GET /state of a new room is Synapse's set: public_chat sends no m.room.guest_access
    (absent means forbidden; SyTest compares the whole set in its lazy-loading tests)."""
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset=preset)
    state = (await alice.call("GET", f"/rooms/{room_id}/state")).json()
    types = sorted((e["type"], e["state_key"]) for e in state)
    expected = [
        ("m.room.create", ""), ("m.room.history_visibility", ""), ("m.room.join_rules", ""),
        ("m.room.member", alice.user_id), ("m.room.power_levels", ""),
    ]
    if guest_access is not None:
        expected.append(("m.room.guest_access", ""))
    assert types == sorted(expected)
    if guest_access is not None:
        content = (await alice.state(room_id, "m.room.guest_access")).json()
        assert content == {"guest_access": guest_access}
    else:
        missing = await alice.state(room_id, "m.room.guest_access", expect=404)
        assert missing.json()["errcode"] == "M_NOT_FOUND"


async def test_create_room_errors(srv: RunningServer) -> None:
    alice = await new_user(srv)
    resp = await alice.call("POST", "/createRoom", {"room_version": "99"}, expect=400)
    assert resp.json()["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    resp = await alice.call("POST", "/createRoom", {"preset": "nope"}, expect=400)
    assert resp.json()["errcode"] == "M_BAD_JSON"
    resp = await srv.client.post("/_matrix/client/v3/createRoom", json={})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_invite_join_leave_members_and_joined_rooms(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    await bob.call("PUT", f"/profile/{bob.user_id}/avatar_url", {"avatar_url": "mxc://x/bob"})
    room_id = await alice.create_room()  # private_chat: invite only
    resp = await bob.call("POST", f"/rooms/{room_id}/join", {}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id, "reason": "come"})
    invite = (await alice.state(room_id, "m.room.member", bob.user_id)).json()
    bob_name = bob.user_id[1:].split(":")[0]  # every account starts with its localpart
    assert invite == {
        "membership": "invite", "reason": "come", "avatar_url": "mxc://x/bob", "displayname": bob_name
    }
    # Bob, invited but not joined, may not read the member list yet.
    assert (await bob.call("GET", f"/rooms/{room_id}/members", expect=403)).json()["errcode"] == "M_FORBIDDEN"
    resp = await bob.call("POST", f"/join/{room_id}", {})
    assert resp.json() == {"room_id": room_id}
    assert_matches_operation(CS + "joining.yaml", "/join/{roomIdOrAlias}", "post", 200, resp.json())
    joined = await bob.call("GET", "/joined_rooms")
    assert joined.json() == {"joined_rooms": [room_id]}
    members = await alice.call("GET", f"/rooms/{room_id}/members")
    assert_matches_operation(CS + "rooms.yaml", "/rooms/{roomId}/members", "get", 200, members.json())
    assert _members(members) == {alice.user_id: "join", bob.user_id: "join"}
    jm = await alice.call("GET", f"/rooms/{room_id}/joined_members")
    assert_matches_operation(CS + "rooms.yaml", "/rooms/{roomId}/joined_members", "get", 200, jm.json())
    alice_name = alice.user_id[1:].split(":")[0]
    assert jm.json() == {"joined": {
        alice.user_id: {"display_name": alice_name},
        bob.user_id: {"display_name": bob_name, "avatar_url": "mxc://x/bob"},
    }}

    await bob.call("POST", f"/rooms/{room_id}/leave", {"reason": "bye"})
    assert (await bob.call("GET", "/joined_rooms")).json() == {"joined_rooms": []}
    # After leaving, bob sees the members as of his leave; alice's later changes are hidden.
    carol = await new_user(srv, "carol")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": carol.user_id})
    assert _members(await bob.call("GET", f"/rooms/{room_id}/members")) == {
        alice.user_id: "join", bob.user_id: "leave"
    }
    assert _members(await alice.call("GET", f"/rooms/{room_id}/members?membership=invite")) == {
        carol.user_id: "invite"
    }
    assert _members(await alice.call("GET", f"/rooms/{room_id}/members?not_membership=join")) == {
        carol.user_id: "invite", bob.user_id: "leave"
    }
    assert _members(
        await alice.call("GET", f"/rooms/{room_id}/members?membership=join&not_membership=invite")
    ) == {alice.user_id: "join", bob.user_id: "leave"}
    bad = await alice.call("GET", f"/rooms/{room_id}/members?membership=nope", expect=400)
    assert bad.json()["errcode"] == "M_INVALID_PARAM"
    resp = await bob.call("GET", f"/rooms/{room_id}/joined_members", expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"


async def test_joined_members_reads_profiles_from_current_member_events(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/rooms/{room_id}/join", {})
    state = f"/rooms/{room_id}/state/m.room.member"
    await alice.call("PUT", f"{state}/{alice.user_id}",
                     {"membership": "join", "displayname": "Alice A", "avatar_url": "mxc://x/a"})
    named = await bob.call("PUT", f"{state}/{bob.user_id}", {"membership": "join", "displayname": "Bob B"})
    # Not strings: left out, as if absent.
    carol = await new_user(srv, "carol")
    await carol.call("POST", f"/rooms/{room_id}/join", {})
    await carol.call("PUT", f"{state}/{carol.user_id}", {"membership": "join", "displayname": 7})
    jm = (await alice.call("GET", f"/rooms/{room_id}/joined_members")).json()["joined"]
    assert jm == {
        alice.user_id: {"display_name": "Alice A", "avatar_url": "mxc://x/a"},
        bob.user_id: {"display_name": "Bob B"},
        carol.user_id: {},
    }
    # A redacted member event keeps its membership and loses its profile.
    await alice.call("PUT", f"/rooms/{room_id}/redact/{named.json()['event_id']}/jm1", {})
    jm = (await alice.call("GET", f"/rooms/{room_id}/joined_members")).json()["joined"]
    assert jm[bob.user_id] == {}
    await carol.call("POST", f"/rooms/{room_id}/leave", {})
    jm = (await bob.call("GET", f"/rooms/{room_id}/joined_members")).json()["joined"]
    assert list(jm) == sorted([alice.user_id, bob.user_id])


async def test_members_at_a_pagination_token(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    room_id = await alice.create_room(preset="public_chat")
    await alice.send(room_id, "before bob")
    members_now = await alice.call("GET", f"/rooms/{room_id}/members")
    assert set(_members(members_now)) == {alice.user_id}
    # The position /sync would hand out as prev_batch just before bob joins.
    position = await _stream_position(srv)
    await bob.call("POST", f"/join/{room_id}", {})
    then = await alice.call("GET", f"/rooms/{room_id}/members?at=t{position}")
    assert _members(then) == {alice.user_id: "join"}
    now = await alice.call("GET", f"/rooms/{room_id}/members")
    assert _members(now) == {alice.user_id: "join", bob.user_id: "join"}
    bad = await alice.call("GET", f"/rooms/{room_id}/members?at=garbage", expect=400)
    assert bad.json()["errcode"] == "M_INVALID_PARAM"


async def _stream_position(srv: RunningServer) -> int:
    from dendrite_lite.storage import events as ev

    storage = srv.app().extensions["dendrite_lite"].storage
    return await storage.db.read(ev.select_max_stream_ordering)


async def test_join_by_alias_and_unknown_rooms(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    room_id = await alice.create_room(preset="public_chat", room_alias_name="joinme")
    resp = await bob.call("POST", f"/join/%23joinme:{SERVER_NAME}", {})
    assert resp.json() == {"room_id": room_id}
    # Joining again is a no-op: no second member event.
    before = (await bob.state(room_id, "m.room.member", bob.user_id, params={"format": "event"})).json()
    await bob.call("POST", f"/rooms/{room_id}/join", {})
    after = (await bob.state(room_id, "m.room.member", bob.user_id, params={"format": "event"})).json()
    assert before["event_id"] == after["event_id"]
    resp = await bob.call("POST", f"/join/%23nothere:{SERVER_NAME}", {}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await bob.call("POST", "/join/!unknown:elsewhere.example", {}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await bob.call("POST", "/join/nonsense", {}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_invite_errors(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    room_id = await alice.create_room()
    carol = await new_user(srv, "carol")
    # Bob is not in the room: he may not invite.
    resp = await bob.call("POST", f"/rooms/{room_id}/invite", {"user_id": carol.user_id}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": "bob"}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await alice.call("POST", f"/rooms/{room_id}/invite", {}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    resp = await alice.call(
        "POST", f"/rooms/{room_id}/invite", {"user_id": f"@ghost:{SERVER_NAME}"}, expect=404
    )
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.call(
        "POST", "/rooms/!nope:test.localhost/invite", {"user_id": bob.user_id}, expect=404
    )
    assert resp.json()["errcode"] == "M_NOT_FOUND"


async def test_kick_ban_unban(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room_id}", {})
    # Bob has no power to kick alice.
    resp = await bob.call("POST", f"/rooms/{room_id}/kick", {"user_id": alice.user_id}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.call("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id, "reason": "spam"})
    kicked = (await alice.state(room_id, "m.room.member", bob.user_id, params={"format": "event"})).json()
    assert kicked["content"] == {"membership": "leave", "reason": "spam"}
    assert kicked["sender"] == alice.user_id
    # Kicking someone not in the room is refused.
    resp = await alice.call("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id}, expect=403)
    await bob.call("POST", f"/join/{room_id}", {})
    await alice.call("POST", f"/rooms/{room_id}/ban", {"user_id": bob.user_id, "reason": "again"})
    assert (await alice.state(room_id, "m.room.member", bob.user_id)).json() == {
        "membership": "ban", "reason": "again"
    }
    resp = await bob.call("POST", f"/join/{room_id}", {}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    # Banned is not "left": the room's state is closed to Bob (as Synapse; SyTest 07ban.pl).
    resp = await bob.call("GET", f"/rooms/{room_id}/state/m.room.member/{bob.user_id}", expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    assert (await bob.call("GET", f"/rooms/{room_id}/state", expect=403)).json()["errcode"] == "M_FORBIDDEN"
    carol = await new_user(srv, "carol")
    resp = await alice.call("POST", f"/rooms/{room_id}/unban", {"user_id": carol.user_id}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.call("POST", f"/rooms/{room_id}/unban", {"user_id": bob.user_id})
    assert (await alice.state(room_id, "m.room.member", bob.user_id)).json() == {"membership": "leave"}
    # Unbanned, Bob counts as having left: he reads the state as it was then.
    resp = await bob.call("GET", f"/rooms/{room_id}/state/m.room.member/{bob.user_id}")
    assert resp.json() == {"membership": "leave"}
    await bob.call("POST", f"/join/{room_id}", {})


async def test_forget_only_after_leaving(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room_id}", {})
    resp = await bob.call("POST", f"/rooms/{room_id}/forget", {}, expect=400)
    assert resp.json()["errcode"] == "M_UNKNOWN"
    await bob.call("POST", f"/rooms/{room_id}/leave", {})
    await bob.call("POST", f"/rooms/{room_id}/forget", {})
    storage = srv.app().extensions["dendrite_lite"].storage
    from dendrite_lite.storage import aliases as al

    assert await storage.db.read(lambda c: al.select_forgotten_room_ids(c, bob.user_id)) == [room_id]
    await bob.call("POST", f"/join/{room_id}", {})
    assert await storage.db.read(lambda c: al.select_forgotten_room_ids(c, bob.user_id)) == []
    resp = await bob.call("POST", "/rooms/!nope:test.localhost/forget", {}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"


async def test_forgotten_room_is_gone_from_every_sync(srv: RunningServer) -> None:
    alice, bob = await _pair(srv)
    kept = await alice.create_room(preset="public_chat")
    gone = await alice.create_room(preset="public_chat")
    for room in (kept, gone):
        await bob.call("POST", f"/join/{room}", {})
    before_leave = (await bob.call("GET", "/sync", params={"timeout": 0})).json()["next_batch"]
    for room in (kept, gone):
        await bob.call("POST", f"/rooms/{room}/leave", {})
    await bob.call("POST", f"/rooms/{gone}/forget", {})
    include_leave = json.dumps({"room": {"include_leave": True}})

    initial = (await bob.call("GET", "/sync", params={"filter": include_leave})).json()
    assert set(initial["rooms"]["leave"]) == {kept}
    since_before = (await bob.call(
        "GET", "/sync", params={"since": before_leave, "timeout": 0}
    )).json()
    assert set(since_before["rooms"]["leave"]) == {kept}
    full = (await bob.call("GET", "/sync", params={"filter": include_leave, "full_state": "true",
                                                   "since": before_leave})).json()
    assert gone not in full["rooms"]["leave"]
    assert gone not in (await bob.call("GET", "/joined_rooms")).json()["joined_rooms"]

    # Joining again brings the room back, and a later leave shows as usual.
    await bob.call("POST", f"/join/{gone}", {})
    await bob.call("POST", f"/rooms/{gone}/leave", {})
    again = (await bob.call("GET", "/sync", params={"filter": include_leave})).json()
    assert set(again["rooms"]["leave"]) == {kept, gone}


async def test_join_body_keys_go_into_the_member_event(srv: RunningServer) -> None:
    """As from Synapse (SyTest "POST /join/:room_id can join a room with custom content"); the
    membership and the profile stay the server's."""
    alice, bob = await _pair(srv)
    await bob.call("PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bob"})
    room_id = await alice.create_room(preset="public_chat")
    body = {"foo": "bar", "membership": "leave", "displayname": "Mallory", "reason": "hi"}
    await bob.call("POST", f"/join/{room_id}", body)
    member = (await bob.state(room_id, "m.room.member", bob.user_id)).json()
    assert member == {"foo": "bar", "membership": "join", "reason": "hi", "displayname": "Bob"}
