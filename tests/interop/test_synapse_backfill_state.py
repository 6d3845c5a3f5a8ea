"""Backfill from a real Synapse (TLS on loopback): a room Synapse hosts, with a history
visibility change ("joined") and a member who joins and leaves before our user joins. Our user
paginates /messages in small pages, so our server fetches the history with Synapse's /backfill
and asks its /state_ids at each batch's oldest event; each backfilled event then carries the
state the room had at that point: what was sent while the room was "joined" only stays hidden,
and /members?at= shows the members of that time."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.integration.test_federation_backfill_state import members_at, paginate, set_visibility
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import (  # noqa: F401 (fixtures)
    clients,
    dendrite_peer,
    dl_user,
    join,
    syn_user,
    wait_membership,
)

pytestmark = pytest.mark.interop


async def test_history_backfilled_from_synapse_keeps_its_state(
    synapse: SynapseServer, clients: tuple[httpx.AsyncClient, httpx.AsyncClient],  # noqa: F811
) -> None:
    ours, theirs = clients
    alice, charlie = await syn_user(synapse, theirs, "bfalice"), await syn_user(synapse, theirs, "bfcharlie")
    bob = await dl_user(ours, "bfbob")
    room_id = (await alice.call("POST", "/createRoom", {"preset": "public_chat", "room_version": "10"})).json()["room_id"]
    before = (await alice.call("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/b1", {"msgtype": "m.text", "body": "before"})).json()["event_id"]
    await set_visibility(alice, room_id, "joined")
    await charlie.call("POST", f"/join/{quote(room_id)}", {})
    secret = (await alice.call("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/b2", {"msgtype": "m.text", "body": "secret"})).json()["event_id"]
    await charlie.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    await alice.call("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/b3", {"msgtype": "m.text", "body": "gone"})
    shared = await set_visibility(alice, room_id, "shared")
    after = (await alice.call("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/b4", {"msgtype": "m.text", "body": "after"})).json()["event_id"]
    await join(bob, room_id, synapse.server_name)
    await wait_membership(bob, room_id, bob.user_id, "join")

    events = await paginate(bob, room_id, 3)
    bodies = [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
    assert bodies == ["after", "before"]
    ids = [e["event_id"] for e in events]
    assert secret not in ids and shared in ids and after in ids
    assert events[-1]["type"] == "m.room.create"
    # The members at "before": alice alone; at "after": charlie has left, bob is not there yet.
    assert await members_at(bob, room_id, before) == {alice.user_id: "join"}
    assert await members_at(bob, room_id, after) == {alice.user_id: "join", charlie.user_id: "leave"}
