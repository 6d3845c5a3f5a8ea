"""PresenceService: states, visibility, sync hook, activity, idle and sync timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.users.presence import IDLE_MS, SYNC_TIMEOUT_MS, PresenceService
from tests.unit.rooms.room_env import ALICE, BOB, CAROL, open_env


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture
async def env(tmp_path: Path):
    env = await open_env(tmp_path)
    clock = Clock()
    presence = await PresenceService.open(env.storage, env.notifier, clock=clock)
    yield env, presence, clock
    await presence.close()
    await env.storage.close()


async def test_set_get_visibility_and_notify(env) -> None:
    room, presence, clock = env
    assert await presence.get_presence(BOB, ALICE) == {"presence": "offline"}
    with room.notifier.listen(BOB) as bob, room.notifier.listen(CAROL) as carol:
        await presence.set_presence(ALICE, ALICE, "online", "lunch")
        assert await bob.wait(0) and not await carol.wait(0)
    clock.ms += 1500
    assert await presence.get_presence(BOB, ALICE) == {
        "presence": "online", "last_active_ago": 1500, "currently_active": True, "status_msg": "lunch",
    }
    with pytest.raises(MatrixError) as exc:
        await presence.get_presence(CAROL, ALICE)
    assert (exc.value.status, exc.value.errcode) == (403, "M_FORBIDDEN")
    assert (await presence.get_presence(CAROL, CAROL))["presence"] == "offline"
    await presence.set_presence(ALICE, ALICE, "unavailable")  # no status_msg: cleared
    assert await presence.get_presence(ALICE, ALICE) == {
        "presence": "unavailable", "last_active_ago": 0, "currently_active": False,
    }
    for args, expected in [
        ((BOB, ALICE, "online"), (403, "M_FORBIDDEN")),
        ((ALICE, ALICE, "busy"), (400, "M_INVALID_PARAM")),
        ((ALICE, ALICE, "online", 5), (400, "M_BAD_JSON")),
    ]:
        with pytest.raises(MatrixError) as exc:
            await presence.set_presence(*args)
        assert (exc.value.status, exc.value.errcode) == expected


async def test_stream_and_restart(env) -> None:
    room, presence, clock = env
    await presence.set_presence(ALICE, ALICE, "online")
    p1 = presence.current_position()
    await presence.set_presence(BOB, BOB, "offline")
    events = await presence.presence_since([ALICE, BOB], 0)
    assert [(e["sender"], e["content"]["presence"]) for e in events] == [(ALICE, "online")]
    assert all(e["type"] == "m.presence" for e in events)
    later = await presence.presence_since([ALICE, BOB], p1)
    assert [(e["sender"], e["content"]["presence"]) for e in later] == [(BOB, "offline")]
    assert await presence.presence_since([CAROL], 0) == []
    again = await PresenceService.open(room.storage, room.notifier, clock=clock)
    assert again.current_position() == presence.current_position() == p1 + 1
    assert (await again.get_presence(ALICE, ALICE))["presence"] == "online"


async def test_sync_hook(env) -> None:
    _, presence, clock = env
    await presence.set_presence_from_sync(ALICE, "offline")
    assert presence.current_position() == 0
    await presence.set_presence_from_sync(ALICE, None)
    assert (await presence.get_presence(ALICE, ALICE))["presence"] == "online"
    pos = presence.current_position()
    await presence.set_presence_from_sync(ALICE, "online")  # already online: no write
    assert presence.current_position() == pos
    await presence.set_presence_from_sync(ALICE, "unavailable")
    assert (await presence.get_presence(ALICE, ALICE))["presence"] == "unavailable"
    await presence.set_presence_from_sync(ALICE, None)  # syncing does not end idleness
    assert (await presence.get_presence(ALICE, ALICE))["presence"] == "unavailable"
    clock.ms += 10
    await presence.bump_active(ALICE)  # activity does
    assert await presence.get_presence(ALICE, ALICE) == {
        "presence": "online", "last_active_ago": 0, "currently_active": True,
    }


async def test_idle_then_offline(env) -> None:
    _, presence, clock = env
    await presence.set_presence_from_sync(ALICE, None)
    await presence.set_presence(BOB, BOB, "online")
    pos = presence.current_position()
    # Alice keeps syncing but does nothing; Bob neither syncs nor acts.
    for _ in range(4):
        clock.ms += SYNC_TIMEOUT_MS // 2
        await presence.set_presence_from_sync(ALICE, None)
        changed = await presence.check_timeouts()
        if changed:
            assert changed == [BOB]
    assert (await presence.get_presence(BOB, BOB))["presence"] == "offline"
    assert (await presence.get_presence(ALICE, ALICE))["presence"] == "online"
    clock.ms = 1_000_000 + IDLE_MS + 1
    await presence.set_presence_from_sync(ALICE, None)
    assert await presence.check_timeouts() == [ALICE]
    alice = await presence.get_presence(ALICE, ALICE)
    assert alice["presence"] == "unavailable" and alice["currently_active"] is False
    assert alice["last_active_ago"] == IDLE_MS + 1
    assert presence.current_position() == pos + 2
    # Activity within the currently_active period costs no write.
    await presence.bump_active(ALICE)
    pos = presence.current_position()
    clock.ms += 1000
    await presence.bump_active(ALICE)
    assert presence.current_position() == pos
    assert (await presence.get_presence(ALICE, ALICE))["last_active_ago"] == 0
