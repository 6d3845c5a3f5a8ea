"""The sliding sync connection tables (storage/sliding_sync.py): a position is a full copy of the
rooms sent, a connection's positions are its own, replacing a connection forgets its positions,
and idle connections go."""

from __future__ import annotations

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import sliding_sync as table
from dendrite_lite.storage.sliding_sync import SentRoom

ALICE = "@alice:example.org"


def _room(room_id: str, sent_to: int, limit: int = 1) -> SentRoom:
    return SentRoom(room_id, sent_to, limit, '{"keys":[],"lazy":false}')


async def test_positions_copy_on_change_and_belong_to_their_connection(
    storage: Storage,
) -> None:
    async def first(conn: aiosqlite.Connection) -> tuple[int, int]:
        key = await table.insert_connection(conn, ALICE, "DEV", "room-list", now_ms=10)
        pos = await table.insert_position(
            conn, key, None, [_room("!a:x", 5), _room("!b:x", 5)]
        )
        return key, pos

    key, p1 = await storage.db.write(first)

    async def second(conn: aiosqlite.Connection) -> int:
        return await table.insert_position(conn, key, p1, [_room("!b:x", 9, limit=20)])

    p2 = await storage.db.write(second)
    rooms1 = await storage.db.read(lambda c: table.select_position_rooms(c, key, p1))
    rooms2 = await storage.db.read(lambda c: table.select_position_rooms(c, key, p2))
    assert rooms1 == {"!a:x": _room("!a:x", 5), "!b:x": _room("!b:x", 5)}
    assert rooms2 == {"!a:x": _room("!a:x", 5), "!b:x": _room("!b:x", 9, limit=20)}
    other = await storage.db.write(
        lambda c: table.insert_connection(c, ALICE, "DEV", "encryption", now_ms=10)
    )
    assert (
        await storage.db.read(lambda c: table.select_position_rooms(c, other, p2))
        is None
    )
    await storage.db.write(lambda c: table.delete_other_positions(c, key, p2))
    assert (
        await storage.db.read(lambda c: table.select_position_rooms(c, key, p1)) is None
    )
    assert (
        await storage.db.read(lambda c: table.select_position_rooms(c, key, p2))
        == rooms2
    )


async def test_a_new_connection_replaces_the_old_and_idle_ones_are_deleted(
    storage: Storage,
) -> None:
    async def setup(conn: aiosqlite.Connection) -> tuple[int, int]:
        key = await table.insert_connection(conn, ALICE, "DEV", "room-list", now_ms=10)
        return key, await table.insert_position(conn, key, None, [_room("!a:x", 5)])

    key, pos = await storage.db.write(setup)
    new_key = await storage.db.write(
        lambda c: table.insert_connection(c, ALICE, "DEV", "room-list", now_ms=20)
    )
    assert new_key != key
    assert (
        await storage.db.read(lambda c: table.select_position_rooms(c, key, pos))
        is None
    )
    found = await storage.db.read(
        lambda c: table.select_connection(c, ALICE, "DEV", "room-list")
    )
    assert found == table.Connection(new_key, 20)
    await storage.db.write(lambda c: table.update_last_used(c, new_key, 50))
    await storage.db.write(lambda c: table.delete_idle_connections(c, ALICE, 40))
    assert await storage.db.read(
        lambda c: table.select_connection(c, ALICE, "DEV", "room-list")
    )
    await storage.db.write(lambda c: table.delete_idle_connections(c, ALICE, 60))
    assert (
        await storage.db.read(
            lambda c: table.select_connection(c, ALICE, "DEV", "room-list")
        )
        is None
    )


async def test_a_device_keeps_only_its_most_recently_used_connections(
    storage: Storage,
) -> None:
    async def open_many(conn: aiosqlite.Connection) -> None:
        for i in range(5):
            await table.insert_connection(conn, ALICE, "DEV", f"c{i}", now_ms=i)
        await table.insert_connection(conn, ALICE, "OTHER", "c0", now_ms=0)
        await table.delete_excess_connections(conn, ALICE, "DEV", keep=2)

    await storage.db.write(open_many)

    async def names(conn: aiosqlite.Connection) -> list[tuple[str, str]]:
        async with conn.execute(
            "SELECT device_id, conn_id FROM sliding_sync_connections ORDER BY device_id, conn_id"
        ) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    assert await storage.db.read(names) == [
        ("DEV", "c3"),
        ("DEV", "c4"),
        ("OTHER", "c0"),
    ]


async def test_each_position_keeps_the_list_counts_it_sent(storage: Storage) -> None:
    async def positions(conn: aiosqlite.Connection) -> tuple[int, int, int, int]:
        key = await table.insert_connection(conn, ALICE, "DEV", "counts", now_ms=10)
        unknown = await table.insert_position(conn, key, None, [_room("!a:x", 5)])
        p1 = await table.insert_position(conn, key, unknown, [], '{"all":3}')
        p2 = await table.insert_position(conn, key, p1, [], '{"all":4}')
        return key, unknown, p1, p2

    key, unknown, p1, p2 = await storage.db.write(positions)
    counts = [
        await storage.db.read(lambda c, p=p: table.select_position_list_counts(c, p))
        for p in (unknown, p1, p2)
    ]
    assert counts == [None, '{"all":3}', '{"all":4}']
    # the rooms are still copied along
    assert set(await storage.db.read(lambda c: table.select_position_rooms(c, key, p2)) or {}) == {"!a:x"}
