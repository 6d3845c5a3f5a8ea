"""Simplified sliding sync (MSC4186): what a client builds from one connection's responses
(initial rooms replaced, deltas merged) matches what a fresh connection sends in full, after a
seeded random run of messages, state changes, joins, leaves and invites in several rooms."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.integration.account_helpers import running_server
from tests.integration.sliding_sync_helpers import all_rooms, sliding_sync
from tests.integration.sync_helpers import User, create_room, join, new_user, send

REQUIRED = [
    ["m.room.name", ""],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.member", "*"],
]


class ClientModel:
    """A client's view of the rooms, from the responses of one connection."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, Any]] = {}

    def apply(self, response: dict[str, Any]) -> None:
        for room_id, room in response["rooms"].items():
            if room.get("initial") or room_id not in self.rooms:
                self.rooms[room_id] = {"state": {}, "timeline": []}
            model = self.rooms[room_id]
            for key in (
                "name",
                "avatar",
                "membership",
                "joined_count",
                "invited_count",
            ):
                if key in room:
                    model[key] = room[key]
            for event in room.get("required_state", []):
                model["state"][(event["type"], event["state_key"])] = event.get(
                    "event_id"
                )
            model["timeline"] += [e["event_id"] for e in room.get("timeline", [])]

    def view(self, room_id: str) -> dict[str, Any]:
        model = self.rooms[room_id]
        return {
            "name": model.get("name"),
            "avatar": model.get("avatar"),
            "membership": model.get("membership"),
            "joined_count": model.get("joined_count"),
            "state": dict(model["state"]),
            "last_event": model["timeline"][-1] if model["timeline"] else None,
        }


def _fresh_view(room: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": room.get("name"),
        "avatar": room.get("avatar"),
        "membership": room.get("membership"),
        "joined_count": room.get("joined_count"),
        "state": {
            (e["type"], e["state_key"]): e["event_id"] for e in room["required_state"]
        },
        "last_event": room["timeline"][-1]["event_id"]
        if room.get("timeline")
        else None,
    }


async def _open_rooms(owner: User, member: User, n: int) -> list[str]:
    """n public rooms where anyone may send and set state, `member` joined, one message each."""
    rooms = []
    for i in range(n):
        room = await create_room(
            owner,
            preset="public_chat",
            name=f"room {i}",
            power_level_content_override={"state_default": 0, "events_default": 0},
        )
        await join(member, room)
        await send(owner, room, f"start {i}")
        rooms.append(room)
    return rooms


async def _random_step(
    rng: random.Random, users: list[User], rooms: list[str], n: int
) -> None:
    actor = rng.choice(users)
    room = rng.choice(rooms)
    action = rng.choice(
        ["message", "message", "topic", "name", "avatar", "join", "leave"]
    )
    if action == "message":
        resp = await actor.put(
            f"/rooms/{room}/send/m.room.message/c{n}",
            {"msgtype": "m.text", "body": f"m{n}"},
        )
    elif action in ("topic", "name", "avatar"):
        content = (
            {"topic": f"t{n}"}
            if action == "topic"
            else (
                {"name": f"n{n}"} if action == "name" else {"url": f"mxc://test/a{n}"}
            )
        )
        resp = await actor.put(f"/rooms/{room}/state/m.room.{action}/", content)
    elif action == "join":
        resp = await actor.post(f"/rooms/{room}/join", {})
    elif action == "invite":
        others = [u for u in users if u is not actor]
        resp = await actor.post(
            f"/rooms/{room}/invite", {"user_id": rng.choice(others).user_id}
        )
    else:
        resp = await actor.post(f"/rooms/{room}/leave", {})
    # Some steps are refused (not joined, no power): that is part of the game.
    assert resp.status_code in (200, 403, 400), resp.text


@pytest.mark.parametrize(
    ("seed", "end"),
    # A window over every room, and one over the top two (rooms move in and out of it).
    [(18, 99), (4186, 99), (3575, 99), (18, 1), (4186, 1)],
)
async def test_deltas_add_up_to_what_a_fresh_connection_sends(
    tmp_path: Path, seed: int, end: int
) -> None:
    rng = random.Random(seed)
    body = all_rooms(end=end, timeline_limit=3, required_state=REQUIRED)
    async with running_server(tmp_path / "data") as srv:
        alice = await new_user(srv.client, "alice")
        bob = await new_user(srv.client, "bob")
        carol = await new_user(srv.client, "carol")
        rooms = await _open_rooms(alice, bob, 4)
        client = ClientModel()
        pos = None
        compared = 0
        # With a window over part of the list, bob stays in every room: a room he left stays
        # listed on the connection that sent it but not on a fresh one, so the windows would
        # differ.
        actors = [alice, bob, carol] if end >= len(rooms) else [alice, carol]
        for n in range(60):
            await _random_step(rng, actors, rooms, n)
            if n % 3 == 2:
                response = await sliding_sync(bob, body, pos=pos)
                client.apply(response)
                pos = response["pos"]
            if n % 15 == 14:
                fresh = await sliding_sync(bob, body, conn_id=f"fresh{n}")
                for room_id, room in fresh["rooms"].items():
                    assert client.view(room_id) == _fresh_view(room), (n, room_id)
                    compared += 1
                if end < len(rooms):
                    continue
                # The connection keeps no room the user left out of the fresh list silently.
                for room_id, model in client.rooms.items():
                    if room_id not in fresh["rooms"]:
                        assert model.get("membership") == "leave", (n, room_id)
        assert compared >= min(8, 4 * (end + 1))


LAZY_BODY = all_rooms(
    end=99,
    timeline_limit=3,
    required_state=[["m.room.name", ""], ["m.room.member", "$LAZY"]],
)


@pytest.mark.parametrize("seed", [7, 2024])
async def test_lazy_members_cover_every_sender_with_their_current_member_event(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    async with running_server(tmp_path / "data") as srv:
        users = [await new_user(srv.client, name) for name in ("alice", "bob", "carol")]
        alice, bob, _ = users
        rooms = await _open_rooms(alice, bob, 3)
        client = ClientModel()
        pos = None
        for n in range(45):
            # Bob (the syncing user) stays in every room; the others come, go and speak.
            await _random_step(rng, [alice, users[2]], rooms, n)
            if rng.random() < 0.2:  # a displayname change: a member event of a sender
                actor = rng.choice(users)
                await actor.put(
                    f"/profile/{actor.user_id}/displayname", {"displayname": f"d{n}"}
                )
            if n % 3 == 2:
                response = await sliding_sync(bob, LAZY_BODY, pos=pos)
                client.apply(response)
                pos = response["pos"]
        every = await sliding_sync(
            bob,
            all_rooms(
                end=99, timeline_limit=50, required_state=[["m.room.member", "*"]]
            ),
            conn_id="every-member",
        )
        checked = 0
        for room_id, model in client.rooms.items():
            if model.get("membership") != "join":
                continue
            current = _fresh_view(every["rooms"][room_id])["state"]
            events = {e["event_id"]: e for e in every["rooms"][room_id]["timeline"]}
            senders = {events[i]["sender"] for i in model["timeline"] if i in events}
            for sender in senders:
                key = ("m.room.member", sender)
                assert model["state"].get(key) == current[key], (room_id, sender)
                checked += 1
        assert checked >= 4
