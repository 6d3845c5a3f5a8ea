"""Federation ingest and pipelined local sends in one room: an event from another server that
arrives while our events are queued (not committed) is checked against the room with them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.events.event import Event
from dendrite_lite.rooms.pipeline import EventSpec
from dendrite_lite.storage import events as ev_table
from tests.unit.federation.ingest_env import ALICE, BOB, ME, A, B, Env, extremities, open_env


@pytest.fixture
async def env(tmp_path: Path):
    e = await open_env(tmp_path, "10")
    yield e
    await e.storage.close()


async def test_remote_event_arriving_while_a_local_ban_is_queued_is_soft_failed(env: Env) -> None:
    # alice (remote.a, 100) lets our user ban.
    levels = {"users": {ALICE: 100, BOB: 50, ME: 100}, "users_default": 0}
    assert await env.send(A, env.dag.add(ALICE, "m.room.power_levels", levels, "")) == {
        env.dag.head[-1]: {}
    }
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_writer(room_id: str, events: Sequence[Event]) -> Any:
        async def write(conn: Any, persisted: Sequence[tuple[Event, int]]) -> None:
            holding.set()
            await release.wait()

        return write

    env.pipeline._persist_hooks.append(hold_writer)  # noqa: SLF001 - test seam
    try:
        ban = asyncio.create_task(env.pipeline.send(
            env.room_id, EventSpec(ME, "m.room.member", {"membership": "ban"}, BOB)
        ))
        await asyncio.wait_for(holding.wait(), 5)
        # bob's server has not seen the ban: his message cites the room before it.
        message = env.dag.add(BOB, "m.room.message", {"msgtype": "m.text", "body": "hi"})
        received = asyncio.create_task(env.send(B, message))
        await asyncio.sleep(0.05)
        assert not received.done()  # ingest waits for the queued ban under the room lock
    finally:
        release.set()
    banned = await ban
    assert await received == {message.event_id: {}}
    stored = await env.storage.db.read(lambda c: ev_table.select_event(c, message.event_id))
    # Checked against the current state WITH the ban: soft failed, not in the timeline.
    assert stored is not None and stored.soft_failed
    assert banned.stream_ordering < stored.stream_ordering
    assert await extremities(env) == [banned.event.event_id]  # a soft-failed event is not one
