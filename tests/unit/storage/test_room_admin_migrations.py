"""Migrations 0027 (blocked_rooms) and 0029 (purged_events): existing rooms keep their rows,
nothing is blocked or purged until an admin says so, and the tables work through their
storage functions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from dendrite_lite.storage import blocked_rooms, purge
from tests.unit.storage.migration_helpers import then_apply, up_to


def _insert_room(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO rooms (room_id, room_version, creator, created_ts)"
        " VALUES ('!r:x', '10', '@a:x', 1)"
    )
    conn.execute(
        "INSERT INTO state_groups (id, room_id, delta_depth) VALUES (7, '!r:x', 0)"
    )
    conn.commit()
    conn.close()


async def test_blocked_rooms_start_empty(tmp_path: Path) -> None:
    path = await up_to(tmp_path, "0027_blocked_rooms.sql")
    _insert_room(path)
    assert 27 in await then_apply(tmp_path, only="0027_blocked_rooms.sql")
    async with aiosqlite.connect(path) as db:
        async with db.execute("SELECT room_id FROM rooms") as cur:
            assert await cur.fetchall() == [("!r:x",)]
        assert await blocked_rooms.select_room_blocker(db, "!r:x") is None
        await blocked_rooms.insert_blocked_room(db, "!r:x", "@admin:x", 5)
        await blocked_rooms.insert_blocked_room(
            db, "!r:x", "@other:x", 6
        )  # the first stays
        assert await blocked_rooms.select_room_blocker(db, "!r:x") == "@admin:x"
        await blocked_rooms.delete_blocked_room(db, "!r:x")
        assert await blocked_rooms.select_room_blocker(db, "!r:x") is None


async def test_purged_events_keep_state_groups(tmp_path: Path) -> None:
    path = await up_to(tmp_path, "0029_purged_events.sql")
    _insert_room(path)
    assert 29 in await then_apply(tmp_path, only="0029_purged_events.sql")
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA foreign_keys = ON")
        assert await purge.select_purged_state_groups(db, ["$e"]) == {}
        await db.execute(
            "INSERT INTO purged_events (event_id, state_group) VALUES ('$e', 7)"
        )
        assert await purge.select_purged_state_groups(db, ["$e", "$f"]) == {"$e": 7}
        try:
            await db.execute("DELETE FROM state_groups WHERE id = 7")
        except sqlite3.IntegrityError:
            pass
        else:
            raise AssertionError("a purged event's state group was deleted under it")
        await purge.delete_purged_event(db, "$e")
        assert await purge.select_purged_state_groups(db, ["$e"]) == {}
