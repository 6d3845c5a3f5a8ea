"""storage/media_admin.py (quota sums, quarantine, old remote copies, totals) and migration 0022
(the media_by_user index), which keeps existing media rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dendrite_lite.storage import Storage
from dendrite_lite.storage import media_admin as table
from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0022_media_quota.sql"
_INSERT = (
    "INSERT INTO media (server_name, media_id, sha256, size, user_id, created_ts, last_access_ts)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
ROWS = [
    ("us", "a", "0" * 64, 100, "@a:us", 0, None),
    ("us", "b", "1" * 64, 50, "@a:us", 0, None),
    ("us", "c", None, None, "@a:us", 0, None),  # pending: no size yet
    ("us", "d", "2" * 64, 7, "@b:us", 0, None),
    ("them", "e", "3" * 64, 1000, None, 10, None),
    ("them", "f", "4" * 64, 2000, None, 10, 500),
    ("us", "preview", "5" * 64, 3, None, 20, None),  # a URL preview image: no uploader
]


async def test_queries(tmp_path: Path) -> None:
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    try:
        await s.db.write(lambda c: c.executemany(_INSERT, ROWS))
        assert await s.db.read(lambda c: table.select_user_media_bytes(c, "@a:us")) == 150
        assert await s.db.read(lambda c: table.select_user_media_bytes(c, "@nobody:us")) == 0
        old = await s.db.read(lambda c: table.select_old_remote_media(c, "us", 100))
        assert sorted(old) == [("them", "e"), ("us", "preview")]
        assert await s.db.read(lambda c: table.select_old_remote_media(c, "us", 15)) == [("them", "e")]
        assert await s.db.read(lambda c: table.select_media_totals(c, "us")) == table.MediaTotals(5, 160, 2, 3000)
        assert await s.db.write(lambda c: table.update_quarantined(c, "us", "a", True))
        assert not await s.db.write(lambda c: table.update_quarantined(c, "us", "zz", True))
        rows = await s.db.read(lambda c: c.execute_fetchall("SELECT media_id FROM media WHERE quarantined"))
        assert [r[0] for r in rows] == ["a"]
    finally:
        await s.close()


async def test_migration_keeps_media_rows(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.executemany(_INSERT, ROWS)
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path))[0] == 22
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM media").fetchone() == (len(ROWS),)
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT SUM(size) FROM media WHERE user_id = '@a:us'").fetchall()
        assert "media_by_user" in str(plan)
    finally:
        conn.close()
