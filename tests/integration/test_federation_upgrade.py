"""A room upgraded on another server: when our server joins the replacement room, our aliases,
directory listing and users' tags follow it, but only if the old room's tombstone names it."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.conftest import RunningServer
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_membership import name, pair

__all__ = ["pair"]  # the fixture, imported for pytest


async def _public_ids(user: User) -> list[str]:
    return [c["room_id"] for c in (await user.call("GET", "/publicRooms")).json()["chunk"]]


async def _alias_target(user: User, alias: str) -> str:
    return str((await user.call("GET", f"/directory/room/{quote(alias)}")).json()["room_id"])


async def _bob_in_room_with_alias_tag_and_listing(a: RunningServer, b: RunningServer) -> tuple[User, User, str, str]:
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    await bob.call("POST", f"/join/{quote(room_id)}", {})
    levels = (await alice.state(room_id, "m.room.power_levels")).json()
    levels["users"][bob.user_id] = 100  # to list the room in b's directory
    await alice.call("PUT", f"/rooms/{room_id}/state/m.room.power_levels", levels)
    for _ in range(100):
        if (await bob.state(room_id, "m.room.power_levels")).json()["users"].get(bob.user_id) == 100:
            break
        await asyncio.sleep(0.05)
    alias = f"#bobs-{bob.user_id[1:].split(':')[0]}:{name(b)}"
    await bob.call("PUT", f"/directory/room/{quote(alias)}", {"room_id": room_id})
    await bob.call("PUT", f"/directory/list/room/{quote(room_id)}", {"visibility": "public"})
    await bob.call("PUT", f"/user/{bob.user_id}/rooms/{quote(room_id)}/tags/u.fav", {})
    return alice, bob, room_id, alias


async def test_joining_the_replacement_room_moves_our_alias_listing_and_tags(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    alice, bob, room_id, alias = await _bob_in_room_with_alias_tag_and_listing(a, b)
    new_room = (await alice.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": "11"})).json()[
        "replacement_room"
    ]
    for _ in range(100):  # the tombstone reaches b through its federation queue
        if (await bob.state(room_id, "m.room.tombstone", expect=None)).status_code == 200:
            break
        await asyncio.sleep(0.05)
    await bob.call("POST", f"/join/{quote(new_room)}?server_name={name(a)}", {})
    assert await _alias_target(bob, alias) == new_room
    public = await _public_ids(bob)
    assert new_room in public and room_id not in public
    tags = (await bob.call("GET", f"/user/{bob.user_id}/rooms/{quote(new_room)}/tags")).json()
    assert tags == {"tags": {"u.fav": {}}}


async def test_a_predecessor_without_a_tombstone_moves_nothing(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    alice, bob, room_id, alias = await _bob_in_room_with_alias_tag_and_listing(a, b)
    # Anyone may write a predecessor into their own room's create event.
    claim = await alice.create_room(
        preset="public_chat", room_version="10", creation_content={"predecessor": {"room_id": room_id}}
    )
    await bob.call("POST", f"/join/{quote(claim)}", {})
    assert await _alias_target(bob, alias) == room_id
    public = await _public_ids(bob)
    assert room_id in public and claim not in public
    tags = (await bob.call("GET", f"/user/{bob.user_id}/rooms/{quote(claim)}/tags")).json()
    assert tags == {"tags": {}}
