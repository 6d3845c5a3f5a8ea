"""Migration 0021: pushers gain the device that set them; existing pushers keep every field,
with device_id NULL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from tests.unit.storage.migration_helpers import then_apply, up_to


NAME = "0021_pusher_devices.sql"


async def test_existing_pushers_kept_without_device(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    row = ("@a:x", "app", "key", "http", "App", "Phone", None, "en", '{"url": "u"}', 5)
    conn.execute("INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name,"
                 " device_display_name, profile_tag, lang, data, pushkey_ts)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [21]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT * FROM pushers").fetchall() == [(*row, None)]
    finally:
        conn.close()
