"""Migration 0021: pushers gain the device that set them; existing pushers keep every field,
with device_id NULL."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from dendrite_lite.storage.migrations import MIGRATIONS_DIR, apply_migrations

NAME = "0021_pusher_devices.sql"


async def test_existing_pushers_kept_without_device(tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    held = sorted(p for p in directory.glob("*.sql") if p.name >= NAME)
    for p in held:
        p.rename(tmp_path / p.name)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    conn = sqlite3.connect(path)
    row = ("@a:x", "app", "key", "http", "App", "Phone", None, "en", '{"url": "u"}', 5)
    conn.execute("INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name,"
                 " device_display_name, profile_tag, lang, data, pushkey_ts)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    conn.commit()
    conn.close()
    (tmp_path / NAME).rename(directory / NAME)
    assert [m.version for m in await apply_migrations(path, directory=directory)] == [21]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT * FROM pushers").fetchall() == [(*row, None)]
    finally:
        conn.close()
