"""Migration 0031 (sliding sync connections) keeps existing rows, and deleting a connection or a
position takes the rows that depend on it (a client's `pos` is forgotten as a whole)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0031_sliding_sync_connections.sql"


async def test_rows_kept_and_deletes_cascade(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO media (server_name, media_id, sha256, size, user_id, created_ts)"
        " VALUES ('us', 'm', ?, 1, '@a:us', 1)",
        ("0" * 64,),
    )
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path, only=NAME)) == [31]
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        assert conn.execute("SELECT COUNT(*) FROM media").fetchone() == (1,)
        conn.execute(
            "INSERT INTO sliding_sync_connections (user_id, device_id, conn_id, created_ts,"
            " last_used_ts) VALUES ('@a:us', 'D', 'room-list', 1, 1)"
        )
        conn.execute("INSERT INTO sliding_sync_positions (conn_key) VALUES (1)")
        conn.execute("INSERT INTO sliding_sync_positions (conn_key) VALUES (1)")
        conn.executemany(
            "INSERT INTO sliding_sync_rooms VALUES (?, '!r:us', 5, 1, '{}')",
            [(1,), (2,)],
        )
        conn.execute("DELETE FROM sliding_sync_positions WHERE position = 1")
        assert conn.execute("SELECT position FROM sliding_sync_rooms").fetchall() == [
            (2,)
        ]
        conn.execute("DELETE FROM sliding_sync_connections")
        assert conn.execute(
            "SELECT COUNT(*) FROM sliding_sync_positions"
        ).fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM sliding_sync_rooms").fetchone() == (
            0,
        )
    finally:
        conn.close()
