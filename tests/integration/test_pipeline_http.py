"""Pipelined sends over real HTTP: a burst in one room, retried txn ids among it; every send
answered once, duplicates answered with the same event, /messages and /sync in one order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import new_user


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("pipeline")) as s:
        yield s


async def test_burst_in_one_room_with_retried_txns(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room_id}", {})
    since = (await alice.call("GET", "/sync", params={"timeout": "0"})).json()["next_batch"]

    async def put(user, txn: str, body: str) -> str:  # type: ignore[no-untyped-def]
        path = f"/rooms/{room_id}/send/m.room.message/{txn}"
        return (await user.call("PUT", path, {"msgtype": "m.text", "body": body})).json()["event_id"]

    # Each txn is PUT twice at once (a client retrying while the first is in flight).
    sends = [(alice if i % 2 else bob, f"burst{i}", f"m{i}") for i in range(24)]
    ids = await asyncio.gather(*(put(u, t, b) for u, t, b in sends for _ in range(2)))
    first, retried = ids[0::2], ids[1::2]
    assert first == retried
    assert len(set(first)) == 24

    resp = await alice.call(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "100"}
    )
    timeline = [e for e in reversed(resp.json()["chunk"]) if e["type"] == "m.room.message"]
    assert sorted(e["event_id"] for e in timeline) == sorted(first)  # each once
    synced = (await alice.call(
        "GET", "/sync", params={"since": since, "timeout": "0"}
    )).json()["rooms"]["join"][room_id]["timeline"]
    sync_order = [e["event_id"] for e in synced["events"] if e["type"] == "m.room.message"]
    messages_order = [e["event_id"] for e in timeline]
    assert sync_order and sync_order == messages_order[-len(sync_order):]  # same order
    for a, b in zip(timeline, timeline[1:]):
        assert a["origin_server_ts"] <= b["origin_server_ts"]  # built, then stored, in order
