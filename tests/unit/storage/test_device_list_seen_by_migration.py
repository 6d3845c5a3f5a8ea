"""Migration 0023: device list changes gain `seen_by`; existing changes keep their rows, with
seen_by NULL (a change for everyone sharing a room)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from dendrite_lite.storage.migrations import MIGRATIONS_DIR, apply_migrations

NAME = "0023_device_list_seen_by.sql"


async def test_existing_changes_kept_for_everyone(tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    for p in sorted(p for p in directory.glob("*.sql") if p.name >= NAME):
        p.rename(tmp_path / p.name)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO device_list_changes (user_id, device_id) VALUES ('@a:x', 'D')")
    conn.execute("INSERT INTO device_list_changes (user_id, device_id) VALUES ('@a:x', NULL)")
    conn.commit()
    conn.close()
    (tmp_path / NAME).rename(directory / NAME)
    assert [m.version for m in await apply_migrations(path, directory=directory)] == [23]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT * FROM device_list_changes ORDER BY stream_id").fetchall()
        assert rows == [(1, "@a:x", "D", None), (2, "@a:x", None, None)]
    finally:
        conn.close()
