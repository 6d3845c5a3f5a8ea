"""storage/appservices.py on a fresh database: the outbox's order and the transaction record
that makes a resend carry the same rows under the same id."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table


async def test_transactions_and_acknowledgement(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "db.sqlite")

    async def scenario(conn: aiosqlite.Connection) -> None:
        await table.insert_outbox_events(conn, [("a", "$1"), ("b", "$x"), ("a", "$2")], 10)
        await table.insert_outbox_edu(conn, "a", "m.to_device", {"type": "t"}, 11)
        rows = await table.select_outbox(conn, "a", 10)
        assert [(r.event_id, r.edu_type) for r in rows] == [("$1", None), ("$2", None), (None, "m.to_device")]
        first = await table.begin_txn(conn, "a", rows[1].position)
        assert first == 1
        state = await table.select_state(conn, "a")
        assert (state.pending_txn_id, state.pending_up_to) == (1, rows[1].position)
        # Rows queued since are not part of the recorded transaction.
        await table.insert_outbox_events(conn, [("a", "$3")], 12)
        resend = await table.select_outbox(conn, "a", 10, state.pending_up_to)
        assert [r.event_id for r in resend] == ["$1", "$2"]
        await table.acknowledge_txn(conn, "a", state.pending_up_to, 13)
        left = await table.select_outbox(conn, "a", 10)
        assert [(r.event_id, r.content) for r in left] == [(None, {"type": "t"}), ("$3", None)]
        after = await table.select_state(conn, "a")
        assert (after.pending_txn_id, after.last_txn_id, after.last_success_ts) == (0, 1, 13)
        assert await table.begin_txn(conn, "a", 0) == 2  # ids keep increasing
        assert await table.select_pending_counts(conn) == {"a": 2, "b": 1}
        assert await table.delete_outbox_except(conn, ["a"]) == 1
        assert await table.select_pending_counts(conn) == {"a": 2}
        assert await table.delete_outbox_except(conn, []) == 2

    try:
        await storage.db.write(scenario)
    finally:
        await storage.close()


async def test_local_room_mates(tmp_path: Path) -> None:
    """Who shares a joined room with each user, only this server's users counted."""
    storage = await Storage.open(tmp_path / "db.sqlite")
    members = [
        ("!r1", "@a:hs", "join"), ("!r1", "@b:hs", "join"), ("!r1", "@r:remote", "join"),
        ("!r1", "@gone:hs", "leave"), ("!r2", "@r:remote", "join"), ("!r2", "@c:hs", "join"),
        ("!r3", "@lonely:remote", "join"), ("!r3", "@x:remote.hs", "join"),
    ]

    async def scenario(conn: aiosqlite.Connection) -> None:
        await conn.executemany(
            "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
            " VALUES (?, 'm.room.member', ?, '$e' || ?, ?)",
            [(room, user, i, membership) for i, (room, user, membership) in enumerate(members)],
        )
        mates = await table.select_local_room_mates(
            conn, ["@a:hs", "@r:remote", "@gone:hs", "@lonely:remote"], "hs"
        )
        assert mates == {"@a:hs": {"@a:hs", "@b:hs"}, "@r:remote": {"@a:hs", "@b:hs", "@c:hs"}}

    try:
        await storage.db.write(scenario)
    finally:
        await storage.close()


async def test_device_list_cursor(tmp_path: Path) -> None:
    """MSC3202: a new AS starts at the stream's position, a transaction records how far it
    carries the stream, and only the AS's acknowledgement moves the cursor there."""
    from dendrite_lite.storage import device_lists

    storage = await Storage.open(tmp_path / "db.sqlite")

    async def scenario(conn: aiosqlite.Connection) -> None:
        for user in ("@a:hs", "@b:hs"):
            await device_lists.insert_device_list_change(conn, user, "D")
        await table.start_device_list_positions(conn, ["wa", "tg"], ["irc"])
        assert (await table.select_state(conn, "wa")).device_list_position == 2
        assert (await table.select_state(conn, "irc")).device_list_position is None
        await device_lists.insert_device_list_change(conn, "@c:hs", "D")
        await table.start_device_list_positions(conn, ["wa"], [])  # a restart: kept
        assert (await table.select_state(conn, "wa")).device_list_position == 2
        changes = await device_lists.select_changes(conn, 2, None, 10)
        assert [(c.stream_id, c.user_id) for c in changes] == [(3, "@c:hs")]
        await table.begin_txn(conn, "wa", 0, 3)
        state = await table.select_state(conn, "wa")
        assert (state.device_list_position, state.pending_device_list_up_to) == (2, 3)
        await table.update_failure(conn, "wa", 5, "down", 100, 6)  # an outage moves nothing
        assert (await table.select_state(conn, "wa")).device_list_position == 2
        await table.acknowledge_txn(conn, "wa", 0, 7)
        state = await table.select_state(conn, "wa")
        assert (state.device_list_position, state.pending_device_list_up_to) == (3, 0)
        # A transaction carrying no device lists leaves the cursor where it is.
        await table.begin_txn(conn, "wa", 0)
        await table.acknowledge_txn(conn, "wa", 0, 8)
        assert (await table.select_state(conn, "wa")).device_list_position == 3
        # Changes concerning nobody of the AS: the cursor moves on unsent, never back.
        await table.advance_device_list_position(conn, "tg", 3)
        await table.advance_device_list_position(conn, "tg", 1)
        assert (await table.select_state(conn, "tg")).device_list_position == 3
        # Device lists turned off: the cursor goes, so turning them on starts afresh.
        await table.start_device_list_positions(conn, [], ["wa"])
        assert (await table.select_state(conn, "wa")).device_list_position is None

    try:
        await storage.db.write(scenario)
    finally:
        await storage.close()
