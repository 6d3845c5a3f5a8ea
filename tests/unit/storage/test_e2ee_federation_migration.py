"""Migration 0018 (end-to-end encryption over federation): existing device list changes count
as already sent (the outbound position starts at the stream's end, so the first start after
the upgrade does not send every past change to other servers), and the rows stay."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from dendrite_lite.storage.migrations import MIGRATIONS_DIR, apply_migrations

NAME = "0018_e2ee_federation.sql"


async def test_outbound_position_starts_after_existing_changes(tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    held = sorted(p.name for p in directory.glob("*.sql") if p.name >= NAME)
    for name in held:
        (directory / name).rename(tmp_path / name)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO device_list_changes (user_id, device_id) VALUES (?, ?)",
        [("@a:x", "D1"), ("@a:x", None), ("@b:x", "D2")],
    )
    conn.commit()
    conn.close()
    (tmp_path / NAME).rename(directory / NAME)
    assert [m.version for m in await apply_migrations(path, directory=directory)] == [18]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT stream_id FROM device_list_outbound").fetchall() == [(3,)]
        assert conn.execute("SELECT COUNT(*) FROM device_list_changes").fetchone() == (3,)
        for table in ("remote_device_lists", "to_device_inbound_ids"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
    finally:
        conn.close()
