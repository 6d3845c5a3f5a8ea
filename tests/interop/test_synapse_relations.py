"""Relations and search with events that come from a real Synapse (TLS on loopback): a Synapse
user's thread reply, edit and reference to our user's message arrive over federation and show in
the bundled aggregations and /relations of our server, and their text is found by /search."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import RunningServer
from tests.integration.relations_helpers import V1, edit, reference, thread_reply
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import (  # noqa: F401  (fixtures)
    clients,
    dendrite_peer,
    dl_user,
    eventually,
    join,
    syn_user,
    wait_membership,
)

pytestmark = pytest.mark.interop


async def test_synapse_relations_are_aggregated_and_searchable(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")
    room = await alice.create_room(preset="public_chat")
    await join(bob, room, dendrite_peer.config.server.server_name)
    await wait_membership(alice, room, bob.user_id, "join")
    root = await alice.send(room, "a numbat walks in")

    async def bob_sees_root() -> bool:
        resp = await bob.call("GET", f"/rooms/{quote(room)}/event/{quote(root)}", expect=None)
        return resp.status_code == 200

    await eventually(bob_sees_root, "the root on Synapse")
    reply = await thread_reply(bob, room, root, "the numbat replies from synapse")
    ref = await reference(bob, room, root)
    own = await bob.send(room, "numbat typo")
    fixed = await edit(bob, room, own, "numbat fixed")

    async def bundled() -> dict[str, Any] | None:
        resp = await alice.call("GET", f"/rooms/{quote(room)}/event/{quote(root)}", expect=None)
        relations = resp.json().get("unsigned", {}).get("m.relations", {})
        return relations if "m.thread" in relations and "m.reference" in relations else None

    relations = await eventually(bundled, "the thread and reference bundled on our server")
    thread = relations["m.thread"]
    assert thread["count"] == 1 and thread["latest_event"]["event_id"] == reply
    assert thread["current_user_participated"] is True  # alice sent the root
    assert relations["m.reference"] == {"chunk": [{"event_id": ref}]}

    async def edited() -> dict[str, Any] | None:
        resp = await alice.call("GET", f"/rooms/{quote(room)}/event/{quote(own)}", expect=None)
        return resp.json().get("unsigned", {}).get("m.relations", {}).get("m.replace")

    assert (await eventually(edited, "bob's edit bundled"))["event_id"] == fixed
    page = (await alice.call("GET", f"{V1}/rooms/{quote(room)}/relations/{quote(root)}")).json()
    assert [e["event_id"] for e in page["chunk"]] == [ref, reply]
    threads = (await alice.call("GET", f"{V1}/rooms/{quote(room)}/threads")).json()
    assert [e["event_id"] for e in threads["chunk"]] == [root]
    body = {"search_categories": {"room_events": {"search_term": "numbat", "order_by": "recent"}}}
    found = (await alice.call("POST", "/search", body)).json()["search_categories"]["room_events"]
    assert [r["result"]["event_id"] for r in found["results"]] == [fixed, own, reply, root]
