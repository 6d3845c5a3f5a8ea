"""Per-user data and ephemeral events as /sync delivers them (the services' contract with sync)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.user_data_helpers import World, open_world, q


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("user_data_sync")):
        yield w


async def _sync(world: World, who: str, since: str | None = None, timeout: int = 0) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout": timeout, "set_presence": "offline"}
    if since:
        params["since"] = since
    resp = await world.call(who, "GET", "/sync", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _room(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    joined: dict[str, Any] = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return joined


def _ephemeral(body: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    events = _room(body, room_id).get("ephemeral", {}).get("events", [])
    return [e for e in events if e["type"] == event_type]


async def test_typing_wakes_a_long_poll(world: World) -> None:
    since = (await _sync(world, "alice"))["next_batch"]
    poll = asyncio.create_task(_sync(world, "alice", since, timeout=10_000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    path = f"/rooms/{q(world.room_id)}/typing/{q(world.ids['bob'])}"
    assert (await world.call("bob", "PUT", path, {"typing": True, "timeout": 20_000})).status_code == 200
    body = await asyncio.wait_for(poll, 5)
    assert _ephemeral(body, world.room_id, "m.typing") == [
        {"type": "m.typing", "content": {"user_ids": [world.ids["bob"]]}}
    ]
    await world.call("bob", "PUT", path, {"typing": False})


async def test_private_receipts_and_tags_in_sync(world: World) -> None:
    since_alice = (await _sync(world, "alice"))["next_batch"]
    since_bob = (await _sync(world, "bob"))["next_batch"]
    event_id = await world.send("alice")
    path = f"/rooms/{q(world.room_id)}/receipt/m.read.private/{q(event_id)}"
    assert (await world.call("bob", "POST", path, {})).status_code == 200
    tag_path = f"/user/{q(world.ids['bob'])}/rooms/{q(world.room_id)}/tags/u.work"
    assert (await world.call("bob", "PUT", tag_path, {"order": 0.5})).status_code == 200

    bob = await _sync(world, "bob", since_bob)
    receipts = _ephemeral(bob, world.room_id, "m.receipt")
    assert receipts and receipts[0]["content"][event_id]["m.read.private"][world.ids["bob"]]["ts"] > 0
    room_data = _room(bob, world.room_id)["account_data"]["events"]
    assert {"type": "m.tag", "content": {"tags": {"u.work": {"order": 0.5}}}} in room_data

    alice = await _sync(world, "alice", since_alice)
    for receipt in _ephemeral(alice, world.room_id, "m.receipt"):
        assert all("m.read.private" not in by_type for by_type in receipt["content"].values())
    assert "account_data" not in _room(alice, world.room_id) or not any(
        e["type"] == "m.tag" for e in _room(alice, world.room_id)["account_data"]["events"]
    )


async def test_initial_sync_has_push_rules_and_presence(world: World) -> None:
    status = f"/presence/{q(world.ids['bob'])}/status"
    assert (await world.call("bob", "PUT", status, {"presence": "online", "status_msg": "hi"})).status_code == 200
    body = await _sync(world, "alice")
    types = [e["type"] for e in body["account_data"]["events"]]
    assert "m.push_rules" in types
    presence = {e["sender"]: e["content"] for e in body.get("presence", {}).get("events", [])}
    assert presence[world.ids["bob"]]["presence"] == "online"
    assert presence[world.ids["bob"]]["status_msg"] == "hi"
