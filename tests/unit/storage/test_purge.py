"""storage.purge on a hand-built room: what a history purge deletes (remote non-state events,
their push actions and unused state groups), what it keeps out of the timeline with the state
group it had (state, local events), what it leaves alone (the point, the forward extremities);
and deleting a whole room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from dendrite_lite.storage import Storage, purge, rooms
from dendrite_lite.storage import events as ev
from dendrite_lite.storage import state as st
from tests.helpers import make_event

US = "local.example"
ALICE = f"@alice:{US}"
BOB = "@bob:remote.example"
ROOM = f"!room:{US}"


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


async def _build(conn: aiosqlite.Connection) -> dict[str, object]:
    """create (ALICE) <- m1 (BOB) <- m2 (ALICE) <- name (BOB) <- m3 (BOB) <- m4 (BOB, the
    forward extremity). m1 has a state group of its own that nothing else uses."""
    await rooms.insert_room(
        conn, room_id=ROOM, room_version="10", creator=ALICE, created_ts=1
    )
    create = make_event(
        "10", "m.room.create", ALICE, {"creator": ALICE}, "", room_id=ROOM
    )
    g1 = await st.insert_state_group(
        conn, ROOM, prev_group=None, full_state={("m.room.create", ""): create.event_id}
    )
    g_m1 = await st.insert_state_group(
        conn, ROOM, prev_group=None, full_state={("m.room.create", ""): create.event_id}
    )
    events = {"create": (create, g1)}
    prev = create

    def msg(name: str, sender: str, depth: int) -> object:
        return make_event(
            "10",
            "m.room.message",
            sender,
            {"body": name},
            room_id=ROOM,
            prev_events=[prev],
            auth_events=[create],
            depth=depth,
        )

    m1 = msg("m1", BOB, 2)
    events["m1"], prev = (m1, g_m1), m1
    m2 = msg("m2", ALICE, 3)
    events["m2"], prev = (m2, g1), m2
    name = make_event(
        "10",
        "m.room.name",
        BOB,
        {"name": "n"},
        "",
        room_id=ROOM,
        prev_events=[prev],
        auth_events=[create],
        depth=4,
    )
    g2 = await st.insert_state_group(
        conn, ROOM, prev_group=g1, delta={("m.room.name", ""): name.event_id}
    )
    events["name"], prev = (name, g2), name
    m3 = msg("m3", BOB, 5)
    events["m3"], prev = (m3, g2), m3
    m4 = msg("m4", BOB, 6)
    events["m4"] = (m4, g2)
    positions = {}
    for key, (event, group) in events.items():
        positions[key] = await ev.insert_event(conn, event, state_group=group)
        await conn.execute(
            "INSERT INTO event_push_actions (room_id, stream_ordering, user_id, highlight)"
            " VALUES (?, ?, ?, 0)",
            (ROOM, positions[key], ALICE),
        )
    await ev.replace_forward_extremities(conn, ROOM, remove=[], add=[m4.event_id])
    await rooms.update_current_state_group(conn, ROOM, g2)
    ids = {k: e.event_id for k, (e, _) in events.items()}
    return {"ids": ids, "positions": positions, "groups": (g1, g_m1, g2)}


async def _rows(
    conn: aiosqlite.Connection, sql: str, *args: object
) -> list[tuple[object, ...]]:
    async with conn.execute(sql, args) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_purge_history_deletes_keeps_and_remembers(storage: Storage) -> None:
    built = await storage.db.write(_build)
    ids, positions = built["ids"], built["positions"]
    g1, _, g2 = built["groups"]
    counts = await storage.db.write(
        lambda c: purge.purge_history(
            c, ROOM, below_depth=5, server_name=US, delete_local_events=False
        )
    )
    assert (counts.deleted, counts.outliers) == (1, 3)

    async def read(conn: aiosqlite.Connection) -> dict[str, object]:
        held = await ev.select_events(conn, ids.values())
        return {
            "held": {k: held.get(i) for k, i in ids.items()},
            "purged": await purge.select_purged_state_groups(conn, ids.values()),
            "groups": {r[0] for r in await _rows(conn, "SELECT id FROM state_groups")},
            "actions": {
                r[0]
                for r in await _rows(
                    conn, "SELECT stream_ordering FROM event_push_actions"
                )
            },
            "timeline": [
                s.event.event_id
                for s in await ev.select_room_events(
                    conn, ROOM, limit=10, backwards=False
                )
            ],
        }

    after = await storage.db.read(read)
    held = after["held"]
    assert held["m1"] is None  # a remote message
    for kept in (
        "create",
        "m2",
        "name",
    ):  # state, and a local message (delete_local_events off)
        assert held[kept].outlier and held[kept].state_group is None, kept
    assert after["purged"] == {ids["create"]: g1, ids["m2"]: g1, ids["name"]: g2}
    assert after["timeline"] == [ids["m3"], ids["m4"]]
    assert after["groups"] == {g1, g2}  # m1's own group went
    assert after["actions"] == {positions["m3"], positions["m4"]}


async def test_delete_local_events_and_delete_room(storage: Storage) -> None:
    built = await storage.db.write(_build)
    ids = built["ids"]
    counts = await storage.db.write(
        lambda c: purge.purge_history(
            c, ROOM, below_depth=5, server_name=US, delete_local_events=True
        )
    )
    assert (counts.deleted, counts.outliers) == (2, 2)
    assert await storage.db.read(lambda c: ev.select_event(c, ids["m2"])) is None
    deleted = await storage.db.write(lambda c: purge.delete_room(c, ROOM))
    assert deleted == 4

    async def leftovers(conn: aiosqlite.Connection) -> list[int]:
        tables = (
            "events",
            "state_groups",
            "state_group_entries",
            "current_state",
            "forward_extremities",
            "event_push_actions",
            "purged_events",
            "rooms",
        )
        return [len(await _rows(conn, f"SELECT 1 FROM {t}")) for t in tables]

    assert await storage.db.read(leftovers) == [0] * 8
