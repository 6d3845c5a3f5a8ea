"""The public room directory across servers with a real Synapse (TLS on loopback): our user
reads Synapse's directory (`server=` on GET and, filtered, POST /publicRooms) and a Synapse
user reads ours, which we serve at /_matrix/federation/v1/publicRooms."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import register
from tests.integration.room_helpers import User
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import clients, dendrite_peer  # noqa: F401  (fixtures)

pytestmark = pytest.mark.interop

_names = itertools.count(1)


async def test_directories_both_ways(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    ours, theirs = clients
    n = next(_names)
    body = await register(ours, f"dirreader{n}")
    alice = User(ours, body["user_id"], body["access_token"], body["device_id"])
    syn = await asyncio.to_thread(synapse.register, f"dirowner{n}")
    bob = User(theirs, syn["user_id"], syn["access_token"], syn.get("device_id", ""))
    theirs_room = await bob.create_room(
        visibility="public", preset="public_chat", name=f"Synapse Garden {n}", topic="tulips"
    )
    ours_room = await alice.create_room(
        visibility="public", preset="public_chat", name=f"Dendrite Lake {n}"
    )

    listed = (await alice.call("GET", "/publicRooms", params={"server": synapse.server_name})).json()
    chunk = next(c for c in listed["chunk"] if c["room_id"] == theirs_room)
    assert chunk["name"] == f"Synapse Garden {n}" and chunk["topic"] == "tulips"
    assert chunk["num_joined_members"] == 1 and chunk["join_rule"] == "public"
    found = (await alice.call(
        "POST", "/publicRooms", {"filter": {"generic_search_term": f"garden {n}"}},
        params={"server": synapse.server_name},
    )).json()
    assert [c["room_id"] for c in found["chunk"]] == [theirs_room]

    ours_name = dendrite_peer.config.server.server_name
    seen = (await bob.call("GET", "/publicRooms", params={"server": ours_name})).json()
    assert ours_room in [c["room_id"] for c in seen["chunk"]]
    filtered = (await bob.call(
        "POST", "/publicRooms", {"filter": {"generic_search_term": f"lake {n}"}},
        params={"server": ours_name},
    )).json()
    assert [c["room_id"] for c in filtered["chunk"]] == [ours_room]
