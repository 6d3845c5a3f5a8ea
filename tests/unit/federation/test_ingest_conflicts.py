"""Concurrent state changes on two servers: a local event and a remote one citing the same prev
event (a fork), then events merging the branches. After every event the current state must be
the resolution of the forward extremities' states, as the remote servers compute it (the DAG's
own resolution is the reference), on the ingest path and on the local send path."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.pipeline import EventSpec
from dendrite_lite.storage import events as ev_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as st
from tests.unit.federation.ingest_env import A, ALICE, B, BOB, ME, Env, current, extremities, open_env

MSG = {"msgtype": "m.text", "body": "hi"}
MEMBER = "m.room.member"


@pytest.fixture
async def env(tmp_path: Path):
    e = await open_env(tmp_path, "10")
    yield e
    await e.storage.close()


async def state_group_of(env: Env, event_id: str) -> dict:
    s = await env.storage.db.read(lambda c: ev_table.select_event(c, event_id))
    assert s is not None and s.state_group is not None
    return await env.storage.db.read(lambda c: st.select_state_group(c, s.state_group))


async def current_group(env: Env) -> dict:
    room = await env.storage.db.read(lambda c: rooms_table.select_room(c, env.room_id))
    assert room is not None and room.current_state_group is not None
    return await env.storage.db.read(lambda c: st.select_state_group(c, room.current_state_group))


async def assert_current_is_resolved(env: Env) -> dict:
    """The current state table and the current state group both hold the resolution of the
    forward extremities' states as the remote DAG computes it."""
    ext = await extremities(env)
    expected = env.dag.state_before(ext)
    assert await current(env) == expected
    assert await current_group(env) == expected
    return expected


async def local_displayname(env: Env, name: str):
    spec = EventSpec(ME, MEMBER, {"membership": "join", "displayname": name}, ME)
    return (await env.pipeline.send(env.room_id, spec)).event


@pytest.mark.parametrize("version", ["1", "10", "12"])
async def test_local_and_remote_displaynames_at_once_both_kept(tmp_path: Path, version: str) -> None:
    env = await open_env(tmp_path, version)
    try:
        base = list(env.dag.head)
        mine = env.dag.adopt(await local_displayname(env, "Me"), advance=False)
        theirs = env.dag.add(
            BOB, MEMBER, {"membership": "join", "displayname": "Bob"}, BOB, prevs=base, advance=False
        )
        assert await env.send(B, theirs) == {theirs.event_id: {}}
        assert await extremities(env) == sorted([mine.event_id, theirs.event_id])
        state = await assert_current_is_resolved(env)
        assert state[(MEMBER, ME)] == mine.event_id
        assert state[(MEMBER, BOB)] == theirs.event_id
        # The next local event merges both branches: it cites both and the state before it is
        # the resolved state.
        msg = (await env.pipeline.send(env.room_id, EventSpec(ME, "m.room.message", MSG))).event
        assert sorted(msg.prev_event_ids) == sorted([mine.event_id, theirs.event_id])
        assert await state_group_of(env, msg.event_id) == state
        env.dag.adopt(msg)
        assert await extremities(env) == [msg.event_id]
        assert await current(env) == state
        # The remote side answers on top of it: still linear, same state.
        reply = env.dag.add(ALICE, "m.room.message", MSG)
        assert await env.send(A, reply) == {reply.event_id: {}}
        assert await current(env) == env.dag.state_after[reply.event_id] == state
    finally:
        await env.storage.close()


@pytest.mark.parametrize("version", ["10", "12"])
async def test_the_branch_received_second_may_lose(tmp_path: Path, version: str) -> None:
    """Two conflicting power levels from one sender: the later one (by origin_server_ts) wins
    the resolution even when it is the one we received first."""
    env = await open_env(tmp_path, version)
    try:
        base = list(env.dag.head)
        pl_id = env.dag.state_after[base[0]][("m.room.power_levels", "")]
        content = dict(env.dag.events[pl_id].content)
        early = env.dag.add(ALICE, "m.room.power_levels", {**content, "events_default": 10}, "", prevs=base, advance=False)
        late = env.dag.add(ALICE, "m.room.power_levels", {**content, "events_default": 20}, "", prevs=base, advance=False)
        assert await env.send(A, late) == {late.event_id: {}}
        assert (await current(env))[("m.room.power_levels", "")] == late.event_id
        assert await env.send(A, early) == {early.event_id: {}}
        state = await assert_current_is_resolved(env)
        assert state[("m.room.power_levels", "")] == late.event_id
    finally:
        await env.storage.close()


async def test_remote_topics_at_once_then_a_local_event(env: Env) -> None:
    base = list(env.dag.head)
    t1 = env.dag.add(ALICE, "m.room.topic", {"topic": "alice's"}, "", prevs=base, advance=False)
    t2 = env.dag.add(BOB, "m.room.topic", {"topic": "bob's"}, "", prevs=base, advance=False)
    assert await env.send(B, t2) == {t2.event_id: {}}
    assert await env.send(A, t1) == {t1.event_id: {}}
    state = await assert_current_is_resolved(env)
    assert state[("m.room.topic", "")] in (t1.event_id, t2.event_id)
    mine = env.dag.adopt(await local_displayname(env, "Me"))
    assert sorted(mine.prev_event_ids) == sorted([t1.event_id, t2.event_id])
    after = await assert_current_is_resolved(env)
    assert after == {**state, (MEMBER, ME): mine.event_id}


async def test_remote_ban_while_our_user_changes_name(env: Env) -> None:
    base = list(env.dag.head)
    mine = env.dag.adopt(await local_displayname(env, "Me"), advance=False)
    ban = env.dag.add(ALICE, MEMBER, {"membership": "ban"}, ME, prevs=base, advance=False)
    assert await env.send(A, ban) == {ban.event_id: {}}
    state = await assert_current_is_resolved(env)
    assert state[(MEMBER, ME)] == ban.event_id
    assert await extremities(env) == sorted([mine.event_id, ban.event_id])
    # Our banned user can no longer send: the local pipeline sees the resolved state.
    with pytest.raises(MatrixError) as err:
        await env.pipeline.send(env.room_id, EventSpec(ME, "m.room.message", MSG))
    assert err.value.errcode == Errcode.FORBIDDEN


async def test_auth_chain_event_we_lack_is_fetched_from_the_origin(env: Env) -> None:
    base = list(env.dag.head)
    alice_join = env.dag.state_after[base[0]][(MEMBER, ALICE)]
    t1 = env.dag.add(ALICE, "m.room.topic", {"topic": "one"}, "", prevs=base, advance=False)
    assert await env.send(A, t1) == {t1.event_id: {}}
    # Lose an outlier of the room's auth chain (its DAG edges stay): resolution needs it.
    assert await env.storage.db.write(lambda c: remote_table.delete_outlier(c, alice_join))
    t2 = env.dag.add(BOB, "m.room.topic", {"topic": "two"}, "", prevs=base, advance=False)
    assert await env.send(B, t2) == {t2.event_id: {}}
    assert alice_join in env.requester.called("get_event")
    await assert_current_is_resolved(env)


async def test_cost_of_a_forking_event_in_a_1000_member_room(tmp_path: Path) -> None:
    """Timings: `.venv/bin/python -m pytest -s tests/unit/federation/test_ingest_conflicts.py -k cost`.
    A linear event needs no resolution; a forking one resolves the full states of both
    branches (every state event and its auth chain loaded)."""
    import time

    env = await open_env(tmp_path, "10", members=1000)
    try:
        assert len(await current(env)) == 1006
        linear = env.dag.add(ALICE, "m.room.topic", {"topic": "linear"}, "")
        t0 = time.perf_counter()
        assert await env.send(A, linear) == {linear.event_id: {}}
        t_linear = time.perf_counter() - t0
        base = list(env.dag.head)
        env.dag.adopt(await local_displayname(env, "Me"), advance=False)
        fork = env.dag.add(BOB, MEMBER, {"membership": "join", "displayname": "B"}, BOB, prevs=base, advance=False)
        t0 = time.perf_counter()
        assert await env.send(B, fork) == {fork.event_id: {}}
        t_fork = time.perf_counter() - t0
        await assert_current_is_resolved(env)
        print(f"\n1000-member room: linear state event {t_linear * 1000:.1f} ms,"
              f" forking state event (resolution of both branches) {t_fork * 1000:.1f} ms")
        assert t_fork < 10.0  # generous bound for slow CI machines
    finally:
        await env.storage.close()
