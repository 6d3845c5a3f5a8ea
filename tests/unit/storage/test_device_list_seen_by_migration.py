"""Migration 0023: device list changes gain `seen_by`; existing changes keep their rows, with
seen_by NULL (a change for everyone sharing a room)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from tests.unit.storage.migration_helpers import then_apply, up_to


NAME = "0023_device_list_seen_by.sql"


async def test_existing_changes_kept_for_everyone(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO device_list_changes (user_id, device_id) VALUES ('@a:x', 'D')")
    conn.execute("INSERT INTO device_list_changes (user_id, device_id) VALUES ('@a:x', NULL)")
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [23]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM device_list_changes ORDER BY stream_id").fetchall()
        assert rows == [(1, "@a:x", "D", None), (2, "@a:x", None, None)]
    finally:
        conn.close()
