"""TypingService: in-memory lists, positions, timeouts, notifications."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.typing import TypingService
from tests.unit.rooms.room_env import ALICE, BOB, CAROL, open_env


@pytest.fixture
async def env(tmp_path: Path):
    env = await open_env(tmp_path)
    typing = TypingService(env.storage, env.notifier, max_timeout_ms=200)
    yield env, typing
    typing.close()
    await env.storage.close()


async def test_start_stop_and_since(env) -> None:
    room, typing = env
    rid = room.room_id
    assert typing.current_position() == 0
    with room.notifier.listen(ALICE) as alice, room.notifier.listen(CAROL) as carol:
        await typing.set_typing(BOB, BOB, rid, True, 100_000)
        assert await alice.wait(0) and not await carol.wait(0)
    assert await typing.typing_since([rid], 0) == {rid: [BOB]}
    p1 = typing.current_position()
    await typing.set_typing(BOB, BOB, rid, True, 100_000)  # renewal: no news
    assert typing.current_position() == p1
    assert await typing.typing_since([rid], p1) == {}
    await typing.set_typing(ALICE, ALICE, rid, True, 100_000)
    assert await typing.typing_since([rid], p1) == {rid: [ALICE, BOB]}
    await typing.set_typing(BOB, BOB, rid, False)
    await typing.set_typing(ALICE, ALICE, rid, False)
    assert await typing.typing_since([rid], p1) == {rid: []}
    await typing.set_typing(ALICE, ALICE, rid, False)  # not typing: nothing changes
    assert typing.current_position() == p1 + 3
    # A token from before a restart (ahead of the counter) gets the full current state.
    assert await typing.typing_since([rid], 10_000) == {rid: []}


async def test_timeout_expires_and_is_capped(env) -> None:
    room, typing = env
    rid = room.room_id
    with room.notifier.listen(ALICE) as alice:
        await typing.set_typing(BOB, BOB, rid, True, 60_000)  # capped to 200 ms here
        await alice.wait(0)
    pos = typing.current_position()
    with room.notifier.listen(ALICE) as alice:
        assert await alice.wait(2.0)
    await asyncio.sleep(0.01)
    assert typing.typing_in(rid) == []
    assert await typing.typing_since([rid], pos) == {rid: []}


async def test_typing_errors(env) -> None:
    room, typing = env
    rid = room.room_id
    cases = [
        ((ALICE, BOB, rid, True, 1000), (403, "M_FORBIDDEN")),
        ((CAROL, CAROL, rid, True, 1000), (403, "M_FORBIDDEN")),
        ((BOB, BOB, "!nope:test", True, 1000), (403, "M_FORBIDDEN")),
        ((BOB, BOB, rid, "yes", 1000), (400, "M_BAD_JSON")),
        ((BOB, BOB, rid, True, -5), (400, "M_BAD_JSON")),
        ((BOB, BOB, rid, True, "soon"), (400, "M_BAD_JSON")),
    ]
    for args, expected in cases:
        with pytest.raises(MatrixError) as exc:
            await typing.set_typing(*args)
        assert (exc.value.status, exc.value.errcode) == expected
    assert typing.current_position() == 0
