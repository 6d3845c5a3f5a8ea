"""ReceiptsService and ReadMarkersService against a real room."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.read_markers import ReadMarkersService
from dendrite_lite.rooms.receipts import ReceiptsService
from dendrite_lite.users.account_data import AccountDataService
from tests.unit.rooms.room_env import ALICE, BOB, CAROL, open_env


@pytest.fixture
async def env(tmp_path: Path):
    env = await open_env(tmp_path)
    clock = [1000.0]
    receipts = await ReceiptsService.open(env.storage, env.notifier, clock=lambda: clock[0])
    account_data = await AccountDataService.open(env.storage, env.notifier)
    markers = ReadMarkersService(receipts, account_data)
    yield env, receipts, markers, account_data
    await env.storage.close()


async def _errcode(coro) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(MatrixError) as exc:
        await coro
    return exc.value.status, exc.value.errcode


async def test_receipt_roundtrip_and_private_visibility(env) -> None:
    room, receipts, _, _ = env
    e1 = await room.send()
    with room.notifier.listen(ALICE) as alice, room.notifier.listen(BOB) as bob:
        assert await receipts.send_receipt(BOB, room.room_id, "m.read", e1.event.event_id)
        assert await alice.wait(0) and await bob.wait(0)
    with room.notifier.listen(ALICE) as alice, room.notifier.listen(BOB) as bob:
        assert await receipts.send_receipt(BOB, room.room_id, "m.read.private", e1.event.event_id)
        assert await bob.wait(0) and not await alice.wait(0)
    pos = receipts.current_position()
    assert pos == 2
    seen_by_bob = await receipts.receipts_since([room.room_id], 0, pos, BOB)
    assert seen_by_bob == {
        room.room_id: {
            e1.event.event_id: {
                "m.read": {BOB: {"ts": 1_000_000}},
                "m.read.private": {BOB: {"ts": 1_000_000}},
            }
        }
    }
    seen_by_alice = await receipts.receipts_since([room.room_id], 0, pos, ALICE)
    assert seen_by_alice == {room.room_id: {e1.event.event_id: {"m.read": {BOB: {"ts": 1_000_000}}}}}
    assert await receipts.receipts_since([room.room_id], pos, pos, BOB) == {}
    assert await receipts.receipts_since(["!other:test"], 0, pos, BOB) == {}
    # Positions survive a restart.
    again = await ReceiptsService.open(room.storage, room.notifier)
    assert again.current_position() == pos


async def test_receipts_only_move_forward(env) -> None:
    room, receipts, _, _ = env
    e1, e2 = await room.send(), await room.send()
    assert await receipts.send_receipt(BOB, room.room_id, "m.read", e2.event.event_id)
    pos = receipts.current_position()
    assert not await receipts.send_receipt(BOB, room.room_id, "m.read", e1.event.event_id)
    assert not await receipts.send_receipt(BOB, room.room_id, "m.read", e2.event.event_id)
    assert receipts.current_position() == pos
    # A different thread or type is a different receipt.
    assert await receipts.send_receipt(BOB, room.room_id, "m.read", e1.event.event_id, "main")
    content = await receipts.receipts_since([room.room_id], 0, receipts.current_position(), BOB)
    assert content[room.room_id] == {
        e2.event.event_id: {"m.read": {BOB: {"ts": 1_000_000}}},
        e1.event.event_id: {"m.read": {BOB: {"ts": 1_000_000, "thread_id": "main"}}},
    }


async def test_receipt_errors(env) -> None:
    room, receipts, _, _ = env
    e1 = await room.send()
    rid, eid = room.room_id, e1.event.event_id
    assert await _errcode(receipts.send_receipt(CAROL, rid, "m.read", eid)) == (403, "M_FORBIDDEN")
    assert await _errcode(receipts.send_receipt(BOB, "!nope:test", "m.read", eid)) == (403, "M_FORBIDDEN")
    assert await _errcode(receipts.send_receipt(BOB, rid, "m.read", "$missing")) == (404, "M_NOT_FOUND")
    other = await room.new_room(BOB)
    assert await _errcode(receipts.send_receipt(BOB, other, "m.read", eid)) == (404, "M_NOT_FOUND")
    assert await _errcode(receipts.send_receipt(BOB, rid, "m.unknown", eid)) == (400, "M_INVALID_PARAM")
    for bad in ("", 5):
        assert await _errcode(receipts.send_receipt(BOB, rid, "m.read", eid, bad)) == (400, "M_INVALID_PARAM")
    assert receipts.current_position() == 0


async def test_thread_validation(env) -> None:
    room, receipts, _, _ = env
    root = (await room.send()).event.event_id
    reply = (await room.send(BOB, {"body": "r", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})).event.event_id
    react = (await room.send(ALICE, {"m.relates_to": {"rel_type": "m.annotation", "event_id": reply, "key": "x"}})).event.event_id
    on_root = (await room.send(ALICE, {"m.relates_to": {"rel_type": "m.reference", "event_id": root}})).event.event_id
    rid = room.room_id
    for event_id in (root, reply, react, on_root):
        assert await receipts.send_receipt(BOB, rid, "m.read", event_id, root) in (True, False)
    for event_id in (root, on_root):
        await receipts.send_receipt(BOB, rid, "m.read.private", event_id, "main")
    for event_id in (reply, react):
        assert await _errcode(receipts.send_receipt(BOB, rid, "m.read", event_id, "main")) == (400, "M_INVALID_PARAM")
    plain = (await room.send()).event.event_id
    assert await _errcode(receipts.send_receipt(BOB, rid, "m.read", plain, root)) == (400, "M_INVALID_PARAM")


async def test_read_markers_and_last_read(env) -> None:
    room, receipts, markers, account_data = env
    e1, e2, e3 = await room.send(), await room.send(), await room.send()
    rid = room.room_id
    assert await receipts.last_read(BOB, rid) is None
    await markers.set_markers(BOB, rid, {"m.fully_read": e2.event.event_id, "m.read": e1.event.event_id})
    assert await account_data.read(BOB, rid, "m.fully_read") == {"event_id": e2.event.event_id}
    last = await receipts.last_read(BOB, rid)
    assert last is not None and (last.event_id, last.stream_ordering) == (e2.event.event_id, e2.stream_ordering)
    await markers.set_markers(BOB, rid, {"m.read.private": e3.event.event_id})
    last = await receipts.last_read(BOB, rid)
    assert last is not None and last.event_id == e3.event.event_id
    # The marker never moves back.
    assert not await markers.set_fully_read(BOB, rid, e1.event.event_id)
    assert await account_data.read(BOB, rid, "m.fully_read") == {"event_id": e2.event.event_id}
    # A bad event ID changes nothing, even when another one in the body is fine.
    pos = (receipts.current_position(), account_data.current_position())
    code = await _errcode(markers.set_markers(BOB, rid, {"m.fully_read": e3.event.event_id, "m.read": "$nope"}))
    assert code == (404, "M_NOT_FOUND")
    assert (receipts.current_position(), account_data.current_position()) == pos
    assert await _errcode(markers.set_markers(BOB, rid, {"m.read": 3})) == (400, "M_INVALID_PARAM")
    assert await _errcode(markers.set_markers(CAROL, rid, {})) == (403, "M_FORBIDDEN")
    await markers.set_markers(BOB, rid, {})
