"""The local event pipeline against a real migrated database (no HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev
from dendrite_lite.storage import state as st
from dendrite_lite.sync.notifier import Notifier

ALICE = "@alice:test"
BOB = "@bob:test"


@pytest.fixture
async def env(tmp_path: Path):
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    notifier = Notifier()
    pipeline = RoomPipeline(storage, server_name="test", key=new_server_key(), notifier=notifier)
    yield storage, pipeline, notifier
    await storage.close()


def _opening(creator: str, rv=get_room_version("12")):
    # v12 creators have infinite power and must not be listed in users.
    users = {} if rv.privileged_creators else {creator: 100}

    def following(room_id: str):
        return [
            EventSpec(creator, "m.room.member", {"membership": "join"}, creator),
            EventSpec(creator, "m.room.power_levels", {"users": users, "users_default": 0}, ""),
            EventSpec(creator, "m.room.join_rules", {"join_rule": "public"}, ""),
        ]

    return following


@pytest.mark.parametrize("version", ["1", "3", "10", "11", "12"])
async def test_create_send_and_state(env, version: str) -> None:
    storage, pipeline, _ = env
    rv = get_room_version(version)
    room_id = None if rv.room_id_is_create_event_hash else "!r1:test"
    content = {} if rv.implicit_room_creator else {"creator": ALICE}
    room_id, persisted = await pipeline.create_room(
        rv, ALICE, content, _opening(ALICE, rv), room_id=room_id
    )
    assert [p.event.type for p in persisted] == [
        "m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules"
    ]
    join = await pipeline.send(room_id, EventSpec(BOB, "m.room.member", {"membership": "join"}, BOB))
    msg = await pipeline.send(
        room_id, EventSpec(BOB, "m.room.message", {"body": "hi", "msgtype": "m.text"})
    )
    assert msg.event.prev_event_ids == (join.event.event_id,)
    assert msg.event.depth == join.event.depth + 1 == 6
    state = await storage.db.read(lambda c: st.select_current_state(c, room_id))
    assert state[("m.room.member", BOB)] == join.event.event_id
    assert len(state) == 5
    assert await storage.db.read(lambda c: ev.select_forward_extremities(c, room_id)) == [
        (msg.event.event_id, 6)
    ]
    assert await storage.db.read(lambda c: st.select_members(c, room_id)) == [ALICE, BOB]


async def test_auth_failure_is_forbidden_and_persists_nothing(env) -> None:
    storage, pipeline, _ = env
    room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, _opening(ALICE))
    before = await storage.db.read(lambda c: ev.select_max_stream_ordering(c))
    with pytest.raises(MatrixError) as exc:
        await pipeline.send(room_id, EventSpec(BOB, "m.room.message", {"body": "x"}))
    assert exc.value.errcode == "M_FORBIDDEN" and exc.value.status == 403
    assert await storage.db.read(lambda c: ev.select_max_stream_ordering(c)) == before


async def test_unknown_room_is_not_found(env) -> None:
    _, pipeline, _ = env
    with pytest.raises(MatrixError) as exc:
        await pipeline.send("!nope:test", EventSpec(ALICE, "m.room.message", {"body": "x"}))
    assert exc.value.errcode == "M_NOT_FOUND"


async def test_txn_is_idempotent(env) -> None:
    _, pipeline, _ = env
    room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, _opening(ALICE))
    spec = EventSpec(ALICE, "m.room.message", {"body": "once"}, txn=(ALICE, "D1", "t1"))
    first = await pipeline.send(room_id, spec)
    second = await pipeline.send(room_id, spec)
    other_device = await pipeline.send(
        room_id, EventSpec(ALICE, "m.room.message", {"body": "once"}, txn=(ALICE, "D2", "t1"))
    )
    assert first.event.event_id == second.event.event_id
    assert first.stream_ordering == second.stream_ordering
    assert other_device.event.event_id != first.event.event_id


async def test_oversized_event_is_too_large(env) -> None:
    _, pipeline, _ = env
    room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, _opening(ALICE))
    with pytest.raises(MatrixError) as exc:
        await pipeline.send(room_id, EventSpec(ALICE, "m.room.message", {"body": "x" * 70000}))
    assert exc.value.errcode == "M_TOO_LARGE" and exc.value.status == 413


async def test_concurrent_sends_form_a_chain_and_wake_members(env) -> None:
    _, pipeline, notifier = env
    room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, _opening(ALICE))
    with notifier.listen(ALICE) as listener:
        sent = await asyncio.gather(
            *(pipeline.send(room_id, EventSpec(ALICE, "m.room.message", {"body": str(i)}))
              for i in range(20))
        )
        assert await listener.wait(0.01)
    depths = sorted(p.event.depth for p in sent)
    assert depths == list(range(depths[0], depths[0] + 20))  # a line, no forks
    by_depth = sorted(sent, key=lambda p: p.event.depth)
    for a, b in zip(by_depth, by_depth[1:]):
        assert b.event.prev_event_ids == (a.event.event_id,)
