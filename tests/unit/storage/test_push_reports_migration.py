"""Migration 0016 (pushers, push queue, notification actions, reports, OpenID tokens): existing
push action rows keep their counts and read as actions NULL (derived from the highlight flag)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from tests.unit.storage.migration_helpers import then_apply, up_to


NAME = "0016_push_reports.sql"


async def test_existing_push_actions_survive_with_null_actions(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO event_push_actions (room_id, stream_ordering, user_id, highlight, thread_id)"
        " VALUES ('!r:x', 7, '@a:x', 1, 'main')"
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [16]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT * FROM event_push_actions").fetchall() == [
            ("!r:x", 7, "@a:x", 1, "main", None)
        ]
        for table in ("pushers", "push_queue", "content_reports", "openid_tokens"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
    finally:
        conn.close()
