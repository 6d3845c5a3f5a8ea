"""Typing notifications over HTTP (typing.yaml)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.user_data_helpers import World, open_world, q
from tests.spec_schema import assert_matches_operation, assert_matches_schema


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("typing")):
        yield w


def _path(world: World, who: str) -> str:
    return f"/rooms/{q(world.room_id)}/typing/{q(world.ids[who])}"


async def test_typing_start_stop_and_wake(world: World) -> None:
    typing = world.services.typing
    since = typing.current_position()
    notifier = world.services.notifier
    with notifier.listen(world.ids["alice"]) as alice, notifier.listen(world.ids["carol"]) as carol:
        resp = await world.call("bob", "PUT", _path(world, "bob"), {"typing": True, "timeout": 30000})
        assert resp.status_code == 200 and resp.json() == {}
        assert await alice.wait(1) and not await carol.wait(0)
    assert_matches_operation("client-server/typing.yaml", "/rooms/{roomId}/typing/{userId}", "put", 200, resp.json())
    changed = await typing.typing_since([world.room_id], since)
    assert changed == {world.room_id: [world.ids["bob"]]}
    assert_matches_schema("event-schemas/schema/m.typing.yaml", {"type": "m.typing", "content": {"user_ids": changed[world.room_id]}})
    resp = await world.call("bob", "PUT", _path(world, "bob"), {"typing": False})
    assert resp.status_code == 200
    assert await typing.typing_since([world.room_id], since) == {world.room_id: []}


async def test_typing_times_out(world: World) -> None:
    typing = world.services.typing
    assert (await world.call("alice", "PUT", _path(world, "alice"), {"typing": True, "timeout": 300})).status_code == 200
    assert world.ids["alice"] in typing.typing_in(world.room_id)
    pos = typing.current_position()
    await asyncio.sleep(0.6)
    assert world.ids["alice"] not in typing.typing_in(world.room_id)
    changed = await typing.typing_since([world.room_id], pos)
    assert world.room_id in changed and world.ids["alice"] not in changed[world.room_id]


@pytest.mark.parametrize(
    ("who", "target", "body", "status", "errcode"),
    [
        ("alice", "bob", {"typing": True, "timeout": 1000}, 403, "M_FORBIDDEN"),
        ("carol", "carol", {"typing": True, "timeout": 1000}, 403, "M_FORBIDDEN"),
        ("bob", "bob", {"timeout": 1000}, 400, "M_MISSING_PARAM"),
        ("bob", "bob", {"typing": "yes"}, 400, "M_BAD_JSON"),
        ("bob", "bob", {"typing": True, "timeout": "long"}, 400, "M_BAD_JSON"),
    ],
)
async def test_typing_errors(world: World, who: str, target: str, body: dict, status: int, errcode: str) -> None:
    resp = await world.call(who, "PUT", _path(world, target), body)
    assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == errcode


async def test_typing_in_unknown_room(world: World) -> None:
    resp = await world.call("bob", "PUT", f"/rooms/{q('!nope:test.localhost')}/typing/{q(world.ids['bob'])}", {"typing": True, "timeout": 10})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
