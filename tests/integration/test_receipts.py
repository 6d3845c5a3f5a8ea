"""Receipts and read markers over HTTP (receipts.yaml, read_markers.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.user_data_helpers import World, assert_error, open_world, q
from tests.spec_schema import assert_matches_operation, assert_matches_schema


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("receipts")):
        yield w


def _receipt_path(world: World, receipt_type: str, event_id: str, room_id: str | None = None) -> str:
    return f"/rooms/{q(room_id or world.room_id)}/receipt/{receipt_type}/{q(event_id)}"


async def test_receipts_visible_as_the_spec_says(world: World) -> None:
    event_id = await world.send("alice")
    receipts = world.services.receipts
    before = receipts.current_position()
    notifier = world.services.notifier
    with notifier.listen(world.ids["alice"]) as alice:
        resp = await world.call("bob", "POST", _receipt_path(world, "m.read", event_id), {})
        assert resp.status_code == 200 and resp.json() == {}
        assert await alice.wait(1)
    assert_matches_operation("client-server/receipts.yaml", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", "post", 200, resp.json())
    with notifier.listen(world.ids["alice"]) as alice, notifier.listen(world.ids["bob"]) as bob:
        resp = await world.call("bob", "POST", _receipt_path(world, "m.read.private", event_id), {})
        assert resp.status_code == 200
        assert await bob.wait(1) and not await alice.wait(0)
    now = receipts.current_position()
    assert now == before + 2
    bob_id = world.ids["bob"]
    for_alice = await receipts.receipts_since([world.room_id], before, now, world.ids["alice"])
    assert set(for_alice[world.room_id][event_id]) == {"m.read"}
    for_bob = await receipts.receipts_since([world.room_id], before, now, bob_id)
    content = for_bob[world.room_id]
    assert set(content[event_id]) == {"m.read", "m.read.private"}
    assert isinstance(content[event_id]["m.read"][bob_id]["ts"], int)
    assert_matches_schema("event-schemas/schema/m.receipt.yaml", {"type": "m.receipt", "content": content})


async def test_threaded_receipts(world: World) -> None:
    root = await world.send("alice")
    reply = await world.send("alice", {"body": "r", "msgtype": "m.text", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    assert (await world.call("bob", "POST", _receipt_path(world, "m.read", reply), {"thread_id": root})).status_code == 200
    assert (await world.call("bob", "POST", _receipt_path(world, "m.read", root), {"thread_id": "main"})).status_code == 200
    receipts = world.services.receipts
    content = (await receipts.receipts_since([world.room_id], 0, receipts.current_position(), world.ids["bob"]))[world.room_id]
    assert content[reply]["m.read"][world.ids["bob"]]["thread_id"] == root
    assert content[root]["m.read"][world.ids["bob"]]["thread_id"] == "main"
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.read", reply), {"thread_id": "main"}), 400, "M_INVALID_PARAM")
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.read", reply), {"thread_id": ""}), 400, "M_INVALID_PARAM")
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.read", reply), {"thread_id": 7}), 400, "M_INVALID_PARAM")
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.fully_read", reply), {"thread_id": root}), 400, "M_INVALID_PARAM")


async def test_receipt_errors(world: World) -> None:
    event_id = await world.send("alice")
    assert_error(await world.call("carol", "POST", _receipt_path(world, "m.read", event_id), {}), 403, "M_FORBIDDEN")
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.read", "$unknown"), {}), 404, "M_NOT_FOUND")
    other_room = await world.create_room("bob")
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.read", event_id, other_room), {}), 404, "M_NOT_FOUND")
    assert_error(await world.call("bob", "POST", _receipt_path(world, "m.bogus", event_id), {}), 400, "M_INVALID_PARAM")
    # An empty body (older clients) is fine.
    resp = await world.client.post(
        f"/_matrix/client/v3{_receipt_path(world, 'm.read', event_id)}",
        headers={"Authorization": f"Bearer {world.tokens['bob']}"},
    )
    assert resp.status_code == 200, resp.text


async def test_read_markers(world: World) -> None:
    first, second = await world.send("alice"), await world.send("alice")
    path = f"/rooms/{q(world.room_id)}/read_markers"
    bob = world.ids["bob"]
    resp = await world.call("bob", "POST", path, {"m.fully_read": second, "m.read": first, "m.read.private": second})
    assert resp.status_code == 200 and resp.json() == {}
    assert_matches_operation("client-server/read_markers.yaml", "/rooms/{roomId}/read_markers", "post", 200, resp.json())
    marker = await world.call("bob", "GET", f"/user/{q(bob)}/rooms/{q(world.room_id)}/account_data/m.fully_read")
    assert marker.status_code == 200 and marker.json() == {"event_id": second}
    last = await world.services.receipts.last_read(bob, world.room_id)
    assert last is not None and last.event_id == second
    # The marker does not move back, through either endpoint.
    assert (await world.call("bob", "POST", path, {"m.fully_read": first})).status_code == 200
    assert (await world.call("bob", "POST", _receipt_path(world, "m.fully_read", first), {})).status_code == 200
    marker = await world.call("bob", "GET", f"/user/{q(bob)}/rooms/{q(world.room_id)}/account_data/m.fully_read")
    assert marker.json() == {"event_id": second}
    third = await world.send("alice")
    assert (await world.call("bob", "POST", _receipt_path(world, "m.fully_read", third), {})).status_code == 200
    marker = await world.call("bob", "GET", f"/user/{q(bob)}/rooms/{q(world.room_id)}/account_data/m.fully_read")
    assert marker.json() == {"event_id": third}
    assert_error(await world.call("carol", "POST", path, {"m.fully_read": second}), 403, "M_FORBIDDEN")
    assert_error(await world.call("bob", "POST", path, {"m.fully_read": "$nope"}), 404, "M_NOT_FOUND")
    assert_error(await world.call("bob", "POST", path, {"m.read": 12}), 400, "M_INVALID_PARAM")
