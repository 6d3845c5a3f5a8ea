"""The pipeline's in-memory room heads: used while nobody else wrote the room, reloaded after."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.storage import events as ev
from dendrite_lite.storage import state as st
from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier
from tests.unit.rooms.room_env import ALICE, BOB, CAROL, RoomEnv, open_env


def _msg(sender: str, body: str) -> EventSpec:
    return EventSpec(sender, "m.room.message", {"msgtype": "m.text", "body": body})


@pytest.fixture
async def env(tmp_path: Path):
    room = await open_env(tmp_path)
    yield room
    await room.storage.close()


def _other_writer(env: RoomEnv) -> RoomPipeline:
    """Another writer of the same rooms (as federation ingest is): same database, own memory."""
    return RoomPipeline(env.storage, server_name="test", key=new_server_key(), notifier=Notifier())


async def test_cached_head_is_used_without_reading_the_state(env: RoomEnv, monkeypatch) -> None:
    await env.send()  # the head is known from here on
    calls = []
    real = st.select_current_state

    async def counting(conn, room_id):  # type: ignore[no-untyped-def]
        calls.append(room_id)
        return await real(conn, room_id)

    monkeypatch.setattr(st, "select_current_state", counting)
    sent = [await env.send(BOB, {"msgtype": "m.text", "body": str(i)}) for i in range(5)]
    assert calls == []
    for a, b in zip(sent, sent[1:]):
        assert b.event.prev_event_ids == (a.event.event_id,)
    extremities = await env.storage.db.read(lambda c: ev.select_forward_extremities(c, env.room_id))
    assert extremities == [(sent[-1].event.event_id, sent[-1].event.depth)]


async def test_write_by_someone_else_makes_the_pipeline_reload(env: RoomEnv) -> None:
    mine = await env.send()
    theirs = await _other_writer(env).send(env.room_id, _msg(BOB, "from elsewhere"))
    after = await env.send()
    # Built on the other writer's event, not on our stale extremity: no fork.
    assert after.event.prev_event_ids == (theirs.event.event_id,)
    assert theirs.event.prev_event_ids == (mine.event.event_id,)


async def test_state_changed_elsewhere_is_seen_by_auth_and_notify(env: RoomEnv) -> None:
    await env.send(BOB)
    other = _other_writer(env)
    await other.send(env.room_id, EventSpec(BOB, "m.room.member", {"membership": "leave"}, BOB))
    await other.send(env.room_id, EventSpec(CAROL, "m.room.member", {"membership": "join"}, CAROL))
    with pytest.raises(MatrixError) as exc:
        await env.send(BOB)
    assert exc.value.errcode == "M_FORBIDDEN"
    with env.notifier.listen(CAROL) as carol, env.notifier.listen(BOB) as bob:
        await env.send(ALICE)
        assert await carol.wait(0.01)  # joined elsewhere, still woken by our send
        assert not await bob.wait(0.01)  # left elsewhere


async def test_failed_auth_leaves_the_cached_head_untouched(env: RoomEnv) -> None:
    before = await env.send()
    with pytest.raises(MatrixError):
        await env.pipeline.send(env.room_id, _msg(CAROL, "not a member"))
    with pytest.raises(MatrixError):  # a state event built, then refused, in a batch
        await env.pipeline.send_events(env.room_id, [
            EventSpec(ALICE, "m.room.topic", {"topic": "t"}, ""), _msg(CAROL, "no"),
        ])
    after = await env.send()
    assert after.event.prev_event_ids == (before.event.event_id,)
    state = await env.storage.db.read(lambda c: st.select_current_state(c, env.room_id))
    assert ("m.room.topic", "") not in state


async def test_failed_write_drops_the_cached_head(tmp_path: Path) -> None:
    fail = {"now": False}

    async def hook(room_id, events):  # type: ignore[no-untyped-def]
        async def write(conn, persisted):  # type: ignore[no-untyped-def]
            if fail["now"]:
                raise RuntimeError("disk on fire")
        return write

    storage = await Storage.open(tmp_path / "db.sqlite", readers=1)
    try:
        pipeline = RoomPipeline(
            storage, server_name="test", key=new_server_key(), notifier=Notifier(),
            persist_hooks=[hook],
        )
        room = RoomEnv(storage, Notifier(), pipeline, "")
        room.room_id = await room.new_room(ALICE)
        first = await room.send()
        fail["now"] = True
        with pytest.raises(RuntimeError, match="disk on fire"):
            await room.send()
        fail["now"] = False
        second = await room.send()
        assert second.event.prev_event_ids == (first.event.event_id,)
        assert await storage.db.read(lambda c: ev.select_forward_extremities(c, room.room_id)) == [
            (second.event.event_id, second.event.depth)
        ]
    finally:
        await storage.close()


async def test_write_by_someone_else_during_a_send_is_noticed(tmp_path: Path, monkeypatch) -> None:
    # Another writer changes the room between our head and our commit (as an out-of-band
    # membership write can): our commit must not cache its head, and must notify from the
    # database's members, not from the head it built on.
    room_env: dict[str, RoomEnv] = {}
    interfere = {"now": False}

    async def meddling_hook(room_id, events):  # type: ignore[no-untyped-def]
        if interfere["now"]:
            interfere["now"] = False
            # Any stored member event id will do for the row: bob's join.
            bob_join = await room_env["env"].storage.db.read(
                lambda c: st.select_current_state_event_id(c, room_id, "m.room.member", BOB)
            )
            await room_env["env"].storage.db.write(
                lambda c: st.update_current_state(
                    c, room_id, {("m.room.member", CAROL): (bob_join, "join")}
                )
            )
        return None

    env = await open_env(tmp_path)
    room_env["env"] = env
    try:
        env.pipeline._persist_hooks.append(meddling_hook)  # noqa: SLF001 - test seam
        await env.send()
        interfere["now"] = True
        with env.notifier.listen(CAROL) as carol:
            await env.send()
            assert await carol.wait(0.01)  # members read back from the database
        calls = []
        real = st.select_current_state

        async def counting(conn, room_id):  # type: ignore[no-untyped-def]
            calls.append(room_id)
            return await real(conn, room_id)

        monkeypatch.setattr(st, "select_current_state", counting)
        await env.send()
        assert calls == [env.room_id]  # the head was not kept: reloaded
    finally:
        await env.storage.close()


async def test_rooms_beyond_the_head_cache_reload_and_stay_linear(env: RoomEnv, monkeypatch) -> None:
    import dendrite_lite.rooms.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "HEAD_CACHE_SIZE", 1)
    other = await env.new_room(ALICE)
    last: dict[str, str] = {}
    for i in range(6):
        room = env.room_id if i % 2 else other
        sent = await env.pipeline.send(room, _msg(ALICE, str(i)))
        if room in last:
            assert sent.event.prev_event_ids == (last[room],)
        last[room] = sent.event.event_id
