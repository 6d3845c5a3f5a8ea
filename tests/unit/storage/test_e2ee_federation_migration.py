"""Migration 0018 (end-to-end encryption over federation): existing device list changes count
as already sent (the outbound position starts at the stream's end, so the first start after
the upgrade does not send every past change to other servers), and the rows stay."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from tests.unit.storage.migration_helpers import then_apply, up_to


NAME = "0018_e2ee_federation.sql"


async def test_outbound_position_starts_after_existing_changes(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO device_list_changes (user_id, device_id) VALUES (?, ?)",
        [("@a:x", "D1"), ("@a:x", None), ("@b:x", "D2")],
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [18]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT stream_id FROM device_list_outbound").fetchall() == [(3,)]
        assert conn.execute("SELECT COUNT(*) FROM device_list_changes").fetchone() == (3,)
        for table in ("remote_device_lists", "to_device_inbound_ids"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
    finally:
        conn.close()
