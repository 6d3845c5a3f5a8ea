"""The user directory across two real servers: a public room this server left is no longer
searched (SyTest "User in remote room doesn't appear in user directory after server left room")."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import RunningServer
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_membership import pair  # noqa: F401 - the fixture


async def _found(user: User, term: str) -> list[str]:
    resp = await user.call("POST", "/user_directory/search", {"search_term": term})
    return [r["user_id"] for r in resp.json()["results"]]


async def test_room_this_server_left_is_no_longer_searched(
    pair: tuple[RunningServer, RunningServer],  # noqa: F811
) -> None:
    a, b = pair
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    await alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Zanzibar"})
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    await bob.call("POST", f"/join/{quote(room_id)}", {})
    assert await _found(bob, "zanzibar") == [alice.user_id]
    await bob.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    assert await _found(bob, "zanzibar") == []
    # The room's own server still has its member in it.
    assert await _found(await new_user(a, "carol"), "zanzibar") == [alice.user_id]
