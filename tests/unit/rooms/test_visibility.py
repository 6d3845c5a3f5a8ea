"""History visibility against a real database, rooms built by the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.rooms.visibility import can_see_event, filter_events_for_user, is_allowed
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev
from dendrite_lite.sync.notifier import Notifier

ALICE = "@alice:test"
BOB = "@bob:test"
CAROL = "@carol:test"


@pytest.fixture
async def env(tmp_path: Path):
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    pipeline = RoomPipeline(storage, server_name="test", key=new_server_key(), notifier=Notifier())
    yield storage, pipeline
    await storage.close()


async def _room(pipeline: RoomPipeline, visibility: str | None) -> str:
    def following(room_id: str):
        specs = [
            EventSpec(ALICE, "m.room.member", {"membership": "join"}, ALICE),
            EventSpec(ALICE, "m.room.power_levels", {"users": {}, "invite": 0}, ""),
            EventSpec(ALICE, "m.room.join_rules", {"join_rule": "public"}, ""),
        ]
        if visibility is not None:
            specs.append(
                EventSpec(ALICE, "m.room.history_visibility", {"history_visibility": visibility}, "")
            )
        return specs

    room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, following)
    return room_id


async def _say(pipeline: RoomPipeline, room_id: str, sender: str, body: str) -> str:
    p = await pipeline.send(room_id, EventSpec(sender, "m.room.message", {"body": body}))
    return p.event.event_id


async def _member(pipeline, room_id, user, membership, sender=None) -> str:
    p = await pipeline.send(
        room_id, EventSpec(sender or user, "m.room.member", {"membership": membership}, user)
    )
    return p.event.event_id


async def _all(storage: Storage, room_id: str):
    return list(
        reversed(
            await storage.db.read(
                lambda c: ev.select_room_events(c, room_id, limit=1000, backwards=True)
            )
        )
    )


async def _bodies(storage, user, room_id):
    visible = await filter_events_for_user(storage, user, await _all(storage, room_id))
    return [s.event.content.get("body") for s in visible if s.event.type == "m.room.message"]


def test_rules_table() -> None:
    assert is_allowed("world_readable", None, False)
    assert is_allowed("joined", "join", False)
    assert is_allowed("shared", "leave", True)
    assert not is_allowed("shared", None, False)
    assert is_allowed("invited", "invite", False)
    assert not is_allowed("joined", "invite", False)
    assert is_allowed("nonsense", None, True)  # unknown means shared


async def test_joined_hides_history_before_join(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "joined")
    await _say(pipeline, room_id, ALICE, "before")
    await _member(pipeline, room_id, BOB, "join")
    await _say(pipeline, room_id, ALICE, "after")
    assert await _bodies(storage, BOB, room_id) == ["after"]
    assert await _bodies(storage, ALICE, room_id) == ["before", "after"]


async def test_shared_shows_history_before_join(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "shared")
    await _say(pipeline, room_id, ALICE, "before")
    # Not joined yet: a peeker sees nothing of a shared room.
    assert await _bodies(storage, BOB, room_id) == []
    await _member(pipeline, room_id, BOB, "join")
    await _say(pipeline, room_id, ALICE, "after")
    assert await _bodies(storage, BOB, room_id) == ["before", "after"]


async def test_default_is_shared(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, None)
    await _say(pipeline, room_id, ALICE, "before")
    await _member(pipeline, room_id, BOB, "join")
    assert await _bodies(storage, BOB, room_id) == ["before"]


async def test_leaving_stops_visibility_after_leave(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "shared")
    await _member(pipeline, room_id, BOB, "join")
    await _say(pipeline, room_id, ALICE, "while joined")
    leave = await _member(pipeline, room_id, BOB, "leave")
    await _say(pipeline, room_id, ALICE, "after leave")
    assert await _bodies(storage, BOB, room_id) == ["while joined"]
    # Their own leave event is visible (membership before it was join).
    leave_ev = await storage.db.read(lambda c: ev.select_event(c, leave))
    assert await can_see_event(storage, BOB, leave_ev)


async def test_invited_visibility(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "invited")
    await _say(pipeline, room_id, ALICE, "before invite")
    await _member(pipeline, room_id, BOB, "invite", sender=ALICE)
    await _say(pipeline, room_id, ALICE, "while invited")
    await _member(pipeline, room_id, BOB, "join")
    await _say(pipeline, room_id, ALICE, "joined")
    assert await _bodies(storage, BOB, room_id) == ["while invited", "joined"]
    # Under 'joined' the invite period is hidden.
    room2 = await _room(pipeline, "joined")
    await _member(pipeline, room2, CAROL, "invite", sender=ALICE)
    await _say(pipeline, room2, ALICE, "while invited")
    await _member(pipeline, room2, CAROL, "join")
    assert await _bodies(storage, CAROL, room2) == []


async def test_world_readable_visible_to_strangers(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "world_readable")
    await _say(pipeline, room_id, ALICE, "public")
    assert await _bodies(storage, CAROL, room_id) == ["public"]


async def test_visibility_change_applies_from_the_change(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "world_readable")
    await _say(pipeline, room_id, ALICE, "open")
    hv = await pipeline.send(
        room_id,
        EventSpec(ALICE, "m.room.history_visibility", {"history_visibility": "joined"}, ""),
    )
    await _say(pipeline, room_id, ALICE, "closed")
    assert await _bodies(storage, CAROL, room_id) == ["open"]
    # The change itself is visible: the visibility before it allowed it.
    stored = await storage.db.read(lambda c: ev.select_event(c, hv.event.event_id))
    assert await can_see_event(storage, CAROL, stored)


async def test_many_events_few_queries_order_kept(env) -> None:
    storage, pipeline = env
    room_id = await _room(pipeline, "joined")
    for i in range(30):
        await _say(pipeline, room_id, ALICE, f"m{i}")
    await _member(pipeline, room_id, BOB, "join")
    for i in range(30, 40):
        await _say(pipeline, room_id, ALICE, f"m{i}")
    assert await _bodies(storage, BOB, room_id) == [f"m{i}" for i in range(30, 40)]
    assert await _bodies(storage, ALICE, room_id) == [f"m{i}" for i in range(40)]
