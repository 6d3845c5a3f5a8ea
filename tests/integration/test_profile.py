"""Profiles (propagated into joined rooms) and /capabilities over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import SERVER_NAME, new_user
from tests.spec_schema import assert_matches_operation

CS = "client-server/"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("profile")) as s:
        yield s


async def test_set_get_and_propagate(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room1 = await alice.create_room(preset="public_chat")
    room2 = await alice.create_room(preset="public_chat")
    left = await bob.create_room()
    await alice.call("POST", f"/join/{left}", {}, expect=403)  # never in bob's private room
    resp = await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    assert_matches_operation(CS + "profile.yaml", "/profile/{userId}/{keyName}", "put", 200, resp.json())
    await alice.call("PUT", f"/profile/{alice.user_id}/avatar_url", {"avatar_url": "mxc://a/b"})
    got = await bob.call("GET", f"/profile/{alice.user_id}")
    assert_matches_operation(CS + "profile.yaml", "/profile/{userId}", "get", 200, got.json())
    assert got.json() == {"displayname": "Alice", "avatar_url": "mxc://a/b"}
    field = await srv.client.get(f"/_matrix/client/v3/profile/{alice.user_id}/displayname")
    assert field.json() == {"displayname": "Alice"}
    for room in (room1, room2):
        member = (await alice.state(room, "m.room.member", alice.user_id)).json()
        assert member == {"membership": "join", "displayname": "Alice", "avatar_url": "mxc://a/b"}
    # Unchanged value: no new member event.
    before = (await alice.state(room1, "m.room.member", alice.user_id, params={"format": "event"})).json()
    await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    after = (await alice.state(room1, "m.room.member", alice.user_id, params={"format": "event"})).json()
    assert before["event_id"] == after["event_id"]
    await alice.call("DELETE", f"/profile/{alice.user_id}/avatar_url")
    assert (await bob.call("GET", f"/profile/{alice.user_id}")).json() == {"displayname": "Alice"}
    member = (await alice.state(room1, "m.room.member", alice.user_id)).json()
    assert member == {"membership": "join", "displayname": "Alice"}
    resp = await alice.call("GET", f"/profile/{alice.user_id}/avatar_url", expect=404)


async def test_new_account_has_its_localpart_as_display_name(srv: RunningServer) -> None:
    """SyTest "displayname updates affect room member events" GETs the name before setting it
    and "joined_members fetches my membership" wants one: Synapse starts every account with its
    localpart. An unset avatar stays a 404 (profile.yaml)."""
    alice = await new_user(srv, "alice")
    localpart = alice.user_id[1:].split(":")[0]
    got = await srv.client.get(f"/_matrix/client/v3/profile/{alice.user_id}/displayname")
    assert (got.status_code, got.json()) == (200, {"displayname": localpart})
    room = await alice.create_room()
    member = (await alice.state(room, "m.room.member", alice.user_id)).json()
    assert member == {"membership": "join", "displayname": localpart}
    joined = (await alice.call("GET", f"/rooms/{room}/joined_members")).json()["joined"]
    assert joined == {alice.user_id: {"display_name": localpart}}
    await alice.call("GET", f"/profile/{alice.user_id}/avatar_url", expect=404)


async def test_profile_errors(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    resp = await bob.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "x"}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await alice.call("GET", f"/profile/@ghost:{SERVER_NAME}", expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.call("GET", "/profile/not-a-user", expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"other": 1}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    resp = await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": 5}, expect=400)
    assert resp.json()["errcode"] == "M_BAD_JSON"
    resp = await alice.call("PUT", f"/profile/{alice.user_id}/avatar_url", {"avatar_url": "http://x"}, expect=400)
    resp = await alice.call("PUT", f"/profile/{alice.user_id}/m.tz", {"m.tz": "Europe/Paris"}, expect=403)
    resp = await srv.client.put(
        f"/_matrix/client/v3/profile/{alice.user_id}/displayname", json={"displayname": "x"}
    )
    assert resp.status_code == 401


async def test_capabilities(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    resp = await alice.call("GET", "/capabilities")
    assert_matches_operation(CS + "capabilities.yaml", "/capabilities", "get", 200, resp.json())
    caps = resp.json()["capabilities"]
    assert caps["m.room_versions"] == {
        "default": "12", "available": {str(v): "stable" for v in range(1, 13)}
    }
    assert caps["m.change_password"] == {"enabled": True}
    assert caps["m.set_displayname"] == caps["m.set_avatar_url"] == {"enabled": True}
    assert caps["m.3pid_changes"] == caps["m.get_login_token"] == {"enabled": False}
    resp = await srv.client.get("/_matrix/client/v3/capabilities")
    assert resp.status_code == 401
