"""Backfill between two real dendrite-lite servers over TLS on loopback: history from before
bob's join, with a history visibility change and a membership change in it, fetched by bob's
server when bob paginates /messages. Each backfilled event carries the state the room had at
that point (not the state at bob's join), so history visibility hides what was sent while the
room was "joined" only, and /members?at= and /context show the old state."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import RunningServer
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_membership import pair  # noqa: F401 (fixture)

__all__: list[str] = []


async def set_visibility(user: User, room_id: str, value: str) -> str:
    resp = await user.call(
        "PUT", f"/rooms/{quote(room_id)}/state/m.room.history_visibility/",
        {"history_visibility": value},
    )
    return str(resp.json()["event_id"])


async def paginate(user: User, room_id: str, limit: int) -> list[dict[str, Any]]:
    """Every event /messages gives `user`, newest first, `limit` a page."""
    events: list[dict[str, Any]] = []
    params = {"dir": "b", "limit": str(limit)}
    for _ in range(50):
        body = (await user.call("GET", f"/rooms/{quote(room_id)}/messages", params=params)).json()
        events.extend(body["chunk"])
        if "end" not in body:
            return events
        params["from"] = body["end"]
    raise AssertionError("pagination did not end")


async def members_at(user: User, room_id: str, event_id: str) -> dict[str, str]:
    """user id -> membership in the room's state at `event_id` (its position from /context)."""
    ctx = (await user.call("GET", f"/rooms/{quote(room_id)}/context/{quote(event_id)}", params={"limit": "1"})).json()
    position = int(ctx["start"][1:]) + 1  # no events before: start is just before the event
    resp = await user.call("GET", f"/rooms/{quote(room_id)}/members", params={"at": f"t{position}"})
    return {e["state_key"]: e["content"]["membership"] for e in resp.json()["chunk"]}


async def test_backfilled_history_keeps_its_own_state(pair: tuple[RunningServer, RunningServer]) -> None:  # noqa: F811
    a, b = pair
    alice, charlie = await new_user(a, "alice"), await new_user(a, "charlie")
    bob = await new_user(b, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    before = await alice.send(room_id, "before")
    await set_visibility(alice, room_id, "joined")
    await charlie.call("POST", f"/join/{quote(room_id)}", {})
    secret = await alice.send(room_id, "secret")
    await charlie.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    gone = await alice.send(room_id, "gone")
    shared = await set_visibility(alice, room_id, "shared")
    after = await alice.send(room_id, "after")
    await bob.call("POST", f"/join/{quote(room_id)}", {})

    # Small pages: each batch's oldest event asks alice's server for the state at it.
    events = await paginate(bob, room_id, 3)
    bodies = [e["content"].get("body") for e in events if e["type"] == "m.room.message"]
    assert bodies == ["after", "before"]
    ids = [e["event_id"] for e in events]
    assert secret not in ids and gone not in ids
    assert shared in ids and after in ids and events[-1]["type"] == "m.room.create"
    assert len(ids) == len(set(ids))
    # Held now, with their state: the same history without asking again.
    again = await paginate(bob, room_id, 50)
    assert [e["event_id"] for e in again] == ids
    # Hidden events stay hidden when asked for directly.
    resp = await bob.call("GET", f"/rooms/{quote(room_id)}/context/{quote(secret)}", expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"

    # The state at "before": alice alone; charlie and bob came later.
    assert await members_at(bob, room_id, before) == {alice.user_id: "join"}
    # At "after": charlie has left and bob has not joined yet.
    assert await members_at(bob, room_id, after) == {alice.user_id: "join", charlie.user_id: "leave"}
    ctx = (await bob.call("GET", f"/rooms/{quote(room_id)}/context/{quote(shared)}", params={"limit": "1"})).json()
    state = {(e["type"], e["state_key"]): e for e in ctx["state"]}
    assert state[("m.room.history_visibility", "")]["event_id"] == shared
    assert ("m.room.member", bob.user_id) not in state
    assert state[("m.room.member", charlie.user_id)]["content"]["membership"] == "leave"
