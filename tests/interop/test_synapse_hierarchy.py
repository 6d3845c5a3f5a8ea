"""Space hierarchies across servers with a real Synapse (TLS on loopback): our user's walk
asks Synapse for a child space it holds (GET /_matrix/federation/v1/hierarchy/{roomId}), and a
Synapse user's walk asks us for a child space we hold."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import register
from tests.integration.room_helpers import User
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import clients, dendrite_peer  # noqa: F401  (fixtures)

pytestmark = pytest.mark.interop

_names = itertools.count(1)
SPACE = {"type": "m.space"}


async def _space_with_child(owner: User, server: str, name: str) -> tuple[str, str]:
    space = await owner.create_room(preset="public_chat", name=f"{name} space", creation_content=SPACE)
    child = await owner.create_room(preset="public_chat", name=f"{name} room")
    await owner.call("PUT", f"/rooms/{space}/state/m.space.child/{quote(child)}", {"via": [server]})
    return space, child


async def _walk(user: User, room_id: str) -> list[dict[str, Any]]:
    resp = await user.call("GET", f"/_matrix/client/v1/rooms/{room_id}/hierarchy")
    return list(resp.json()["rooms"])


async def test_hierarchies_both_ways(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    ours, theirs = clients
    n = next(_names)
    body = await register(ours, f"spacer{n}")
    alice = User(ours, body["user_id"], body["access_token"], body["device_id"])
    syn = await asyncio.to_thread(synapse.register, f"spaceowner{n}")
    bob = User(theirs, syn["user_id"], syn["access_token"], syn.get("device_id", ""))
    ours_name = dendrite_peer.config.server.server_name

    syn_space, syn_child = await _space_with_child(bob, synapse.server_name, f"Synapse {n}")
    top = await alice.create_room(preset="public_chat", name="Top", creation_content=SPACE)
    await alice.call("PUT", f"/rooms/{top}/state/m.space.child/{quote(syn_space)}",
                     {"via": [synapse.server_name]})
    rooms = await _walk(alice, top)
    assert [r["room_id"] for r in rooms] == [top, syn_space, syn_child]
    assert rooms[1]["name"] == f"Synapse {n} space" and rooms[1]["room_type"] == "m.space"
    assert rooms[2]["name"] == f"Synapse {n} room" and rooms[2]["num_joined_members"] == 1

    our_space, our_child = await _space_with_child(alice, ours_name, f"Ours {n}")
    syn_top = await bob.create_room(preset="public_chat", name="Syn top", creation_content=SPACE)
    await bob.call("PUT", f"/rooms/{syn_top}/state/m.space.child/{quote(our_space)}",
                   {"via": [ours_name]})
    rooms = await _walk(bob, syn_top)
    assert [r["room_id"] for r in rooms] == [syn_top, our_space, our_child]
    assert rooms[2]["name"] == f"Ours {n} room"
