"""Migration 0030 (media_by_user_created) keeps media rows, and the user media list's default
order (newest first) reads the index instead of sorting the user's uploads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0030_media_by_user_created.sql"


async def test_rows_kept_and_default_order_uses_the_index(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO media (server_name, media_id, sha256, size, user_id, created_ts)"
        " VALUES ('us', ?, ?, 1, '@a:us', ?)",
        [(f"m{i}", f"{i:064x}", i) for i in range(3)],
    )
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path, only=NAME)) == [30]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM media").fetchone() == (3,)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT media_id FROM media WHERE user_id = '@a:us'"
            " ORDER BY created_ts DESC, media_id ASC LIMIT 10"
        ).fetchall()
    finally:
        conn.close()
    assert "media_by_user_created" in str(plan)
