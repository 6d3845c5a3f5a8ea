"""rooms, events, edges, extremities, state groups and current state tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev
from dendrite_lite.storage import rooms
from dendrite_lite.storage import state as st
from tests.helpers import make_event

ALICE = "@alice:example.org"
ROOM = "!room:example.org"


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


async def test_room_roundtrip(storage: Storage) -> None:
    created = await storage.db.write(
        lambda c: rooms.insert_room(c, room_id=ROOM, room_version="10", creator=ALICE, created_ts=5)
    )
    again = await storage.db.write(
        lambda c: rooms.insert_room(c, room_id=ROOM, room_version="11", creator=ALICE, created_ts=6)
    )
    room = await storage.db.read(lambda c: rooms.select_room(c, ROOM))
    assert (created, again) == (True, False)
    assert room is not None and room.room_version == "10" and room.current_state_group is None
    assert await storage.db.read(lambda c: rooms.select_room(c, "!nope:x")) is None


async def test_event_insert_select_edges_and_txn(storage: Storage) -> None:
    create = make_event("10", "m.room.create", ALICE, {"creator": ALICE}, "", room_id=ROOM, depth=1)
    msg = make_event(
        "10", "m.room.message", ALICE, {"body": "hi"}, room_id=ROOM,
        prev_events=[create], auth_events=[create], depth=2,
    )

    async def persist(c):
        a = await ev.insert_event(c, create, state_group=None)
        b = await ev.insert_event(c, msg, txn=(ALICE, "DEV", "t1"))
        await ev.replace_forward_extremities(c, ROOM, remove=[], add=[create.event_id])
        await ev.replace_forward_extremities(c, ROOM, remove=[create.event_id], add=[msg.event_id])
        return a, b

    a, b = await storage.db.write(persist)
    assert b > a > 0
    got = await storage.db.read(lambda c: ev.select_event(c, msg.event_id))
    assert got is not None and got.event.content["body"] == "hi"
    assert got.event.prev_event_ids == (create.event_id,) and got.stream_ordering == b
    by_txn = await storage.db.read(lambda c: ev.select_event_by_txn(c, ALICE, "DEV", "t1"))
    assert by_txn is not None and by_txn.event.event_id == msg.event_id
    assert await storage.db.read(lambda c: ev.select_event_by_txn(c, ALICE, "DEV2", "t1")) is None
    assert await storage.db.read(lambda c: ev.select_forward_extremities(c, ROOM)) == [
        (msg.event_id, 2)
    ]
    newest_first = await storage.db.read(
        lambda c: ev.select_room_events(c, ROOM, limit=10, backwards=True)
    )
    assert [s.event.event_id for s in newest_first] == [msg.event_id, create.event_id]
    since = await storage.db.read(lambda c: ev.select_room_events_since(c, [ROOM], a, b))
    assert [s.event.event_id for s in since] == [msg.event_id]


async def test_state_group_deltas_and_snapshot_cutoff(storage: Storage) -> None:
    async def build(c):
        root = await st.insert_state_group(c, ROOM, prev_group=None, full_state={("t", ""): "$0"})
        group = root
        for i in range(1, st.MAX_DELTA_DEPTH + 5):
            group = await st.insert_state_group(
                c, ROOM, prev_group=group, delta={("m.room.member", f"@u{i}:x"): f"${i}"}
            )
        removed = await st.insert_state_group(c, ROOM, prev_group=group, delta={("t", ""): None})
        return root, group, removed

    root, last, removed = await storage.db.write(build)
    full = await storage.db.read(lambda c: st.select_state_group(c, last))
    assert full[("t", "")] == "$0"
    assert len(full) == st.MAX_DELTA_DEPTH + 5
    assert full[("m.room.member", f"@u{st.MAX_DELTA_DEPTH + 4}:x")] == f"${st.MAX_DELTA_DEPTH + 4}"
    gone = await storage.db.read(lambda c: st.select_state_group(c, removed))
    assert ("t", "") not in gone and len(gone) == len(full) - 1
    # The chain was cut: no group's delta chain is longer than MAX_DELTA_DEPTH.
    depths = await storage.db.read(
        lambda c: c.execute_fetchall("SELECT MAX(delta_depth) FROM state_groups")
    )
    assert depths[0][0] <= st.MAX_DELTA_DEPTH


async def test_current_state_and_memberships(storage: Storage) -> None:
    async def apply(c):
        await st.update_current_state(
            c, ROOM,
            {("m.room.member", ALICE): ("$j", "join"), ("m.room.member", "@bob:x"): ("$i", "invite"),
             ("m.room.topic", ""): ("$t", None)},
        )
        await st.update_current_state(c, ROOM, {("m.room.topic", ""): None})

    await storage.db.write(apply)
    state = await storage.db.read(lambda c: st.select_current_state(c, ROOM))
    assert state == {("m.room.member", ALICE): "$j", ("m.room.member", "@bob:x"): "$i"}
    assert await storage.db.read(lambda c: st.select_room_ids_for_user(c, ALICE)) == [ROOM]
    assert await storage.db.read(lambda c: st.select_room_ids_for_user(c, "@bob:x")) == []
    assert await storage.db.read(lambda c: st.select_members(c, ROOM, "invite")) == ["@bob:x"]
    # Room complexity counts every current state event; other rooms count none.
    assert await storage.db.read(lambda c: st.select_current_state_count(c, ROOM)) == 2
    assert await storage.db.read(lambda c: st.select_current_state_count(c, "!other:x")) == 0
