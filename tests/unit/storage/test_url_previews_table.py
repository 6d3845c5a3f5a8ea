"""The url_previews table (migration 0019): answers read back until they expire, replaced by
a newer fetch, expired rows deleted as new ones are stored; the migration keeps existing rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dendrite_lite.storage import Storage
from dendrite_lite.storage import url_previews as table
from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0019_url_previews.sql"


async def test_cached_until_expiry_replaced_and_expired_rows_deleted(tmp_path: Path) -> None:
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    try:
        await s.db.write(lambda c: table.upsert_url_preview(c, "https://a/", '{"v":1}', 0, 100))
        await s.db.write(lambda c: table.upsert_url_preview(c, "https://b/", '{"v":2}', 0, 500))
        assert await s.db.read(lambda c: table.select_url_preview(c, "https://a/", 99)) == '{"v":1}'
        assert await s.db.read(lambda c: table.select_url_preview(c, "https://a/", 100)) is None
        await s.db.write(lambda c: table.upsert_url_preview(c, "https://b/", '{"v":3}', 200, 900))
        assert await s.db.read(lambda c: table.select_url_preview(c, "https://b/", 600)) == '{"v":3}'
        rows = await s.db.read(lambda c: c.execute_fetchall("SELECT url FROM url_previews"))
        assert [tuple(r) for r in rows] == [("https://b/",)]  # a's expired row went with b's write
    finally:
        await s.close()


async def test_migration_keeps_existing_rows(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO accounts (user_id, created_ts) VALUES ('@a:x', 0)")
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path))[0] == 19
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id FROM accounts").fetchall() == [("@a:x",)]
        assert conn.execute("SELECT COUNT(*) FROM url_previews").fetchone() == (0,)
    finally:
        conn.close()
