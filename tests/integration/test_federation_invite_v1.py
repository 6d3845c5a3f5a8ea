"""The deprecated PUT /v1/invite, still served as Synapse does (SyTest's servers use it): the
body is the event, its stripped state in unsigned, the room version taken as 1, and the answer
our countersigned event wrapped in `[200, body]` (invites-v1.yaml)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.events.signing import hash_and_sign_event
from tests.conftest import RunningServer
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_membership import _client, name, pair, sync_rooms

__all__ = ["pair"]  # the fixture, imported for pytest


async def _invite_from_a_room_b_does_not_have(a: RunningServer, b: RunningServer, alice: User) -> str:
    """b invites alice over /v1/invite to a room it made up; returns the room id."""
    room_id, event_id = f"!v1room:{name(b)}", f"$invite1:{name(b)}"
    pdu = {
        "type": "m.room.member", "room_id": room_id, "sender": f"@x:{name(b)}", "origin": name(b),
        "state_key": alice.user_id, "content": {"membership": "invite"}, "depth": 3,
        "event_id": event_id, "prev_events": [], "auth_events": [], "origin_server_ts": 1,
    }
    signed = hash_and_sign_event(pdu, get_room_version("1"), name(b), b.key)
    stripped = [{"type": "m.room.name", "state_key": "", "sender": f"@x:{name(b)}", "content": {"name": "Old"}}]
    body = {**signed, "unsigned": {"invite_room_state": stripped}}
    path = f"/_matrix/federation/v1/invite/{quote(room_id)}/{quote(event_id)}"
    status, answer = await _client(b).put_json(name(a), path, body)
    assert status == 200 and answer["event"]["event_id"] == event_id
    assert name(a) in answer["event"]["signatures"] and name(b) in answer["event"]["signatures"]
    for _ in range(50):
        invited = (await sync_rooms(alice))["invite"]
        if room_id in invited:
            break
        await asyncio.sleep(0.05)
    names = [e["content"] for e in invited[room_id]["invite_state"]["events"] if e["type"] == "m.room.name"]
    assert names == [{"name": "Old"}]
    return room_id


async def test_v1_invite_is_countersigned_and_shown(pair: tuple[RunningServer, RunningServer]) -> None:
    a, b = pair
    await _invite_from_a_room_b_does_not_have(a, b, await new_user(a, "alice"))


async def test_an_invite_the_inviting_server_refuses_to_take_back_is_rejected_here(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    """b answers make_leave with an error (it has no such room): the rejection is made here only,
    as Synapse does, and the room moves to `leave` in alice's /sync."""
    a, b = pair
    alice = await new_user(a, "alice")
    room_id = await _invite_from_a_room_b_does_not_have(a, b, alice)
    since = (await alice.call("GET", "/sync", params={"timeout": "0"})).json()["next_batch"]
    await alice.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    rooms = (await alice.call("GET", "/sync", params={"timeout": "0", "since": since})).json()["rooms"]
    assert room_id not in rooms["invite"]
    leave = rooms["leave"][room_id]["timeline"]["events"][-1]
    assert (leave["type"], leave["state_key"], leave["content"]) == (
        "m.room.member", alice.user_id, {"membership": "leave"},
    )
