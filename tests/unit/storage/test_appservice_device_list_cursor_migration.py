"""Migration 0033 (each AS's cursor into the device list stream): the ASes known before start at
the stream's position then, their queued rows (device list rows of the old kind too) and
transaction state stay, and an AS seen later has no cursor until it starts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0033_appservice_device_list_cursor.sql"


async def test_known_appservices_start_at_the_stream_position(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO device_list_changes (user_id, device_id) VALUES (?, 'D')",
        [("@a:hs",), ("@b:hs",), ("@c:hs",)],
    )
    conn.execute(
        "INSERT INTO appservice_state (as_id, last_txn_id, pending_txn_id, pending_up_to)"
        " VALUES ('wa', 7, 7, 2)"
    )
    conn.execute(
        "INSERT INTO appservice_outbox (as_id, edu_type, edu_content, queued_ts) VALUES"
        " ('wa', 'org.matrix.msc3202.device_list', '{\"user_id\": \"@a:hs\", \"left\": false}', 1)"
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [33]
    conn = sqlite3.connect(path)
    try:
        state = conn.execute(
            "SELECT as_id, last_txn_id, pending_txn_id, pending_up_to, device_list_position,"
            " pending_device_list_up_to FROM appservice_state"
        ).fetchall()
        assert state == [("wa", 7, 7, 2, 3, 0)]
        assert conn.execute("SELECT COUNT(*) FROM appservice_outbox").fetchone() == (1,)
        conn.execute("INSERT INTO appservice_state (as_id) VALUES ('new')")
        assert conn.execute(
            "SELECT device_list_position, pending_device_list_up_to FROM appservice_state"
            " WHERE as_id = 'new'"
        ).fetchone() == (None, 0)
    finally:
        conn.close()
