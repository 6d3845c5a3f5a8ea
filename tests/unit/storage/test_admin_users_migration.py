"""Migration 0026: accounts gain shadow_banned (0) and user_type (NULL), devices gain
last_seen_user_agent (NULL); existing rows are kept as they were."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0026_admin_users.sql"


async def test_accounts_and_devices_kept_with_defaults(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO accounts (user_id, password_hash, is_admin, is_guest, created_ts)"
        " VALUES ('@a:x', 'h', 1, 0, 5)"
    )
    conn.execute(
        "INSERT INTO devices (user_id, device_id, last_seen_ts, last_seen_ip, created_ts)"
        " VALUES ('@a:x', 'D', 7, '10.0.0.1', 5)"
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [26]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute(
            "SELECT user_id, password_hash, is_admin, shadow_banned, user_type FROM accounts"
        ).fetchall() == [("@a:x", "h", 1, 0, None)]
        assert conn.execute(
            "SELECT device_id, last_seen_ts, last_seen_ip, last_seen_user_agent FROM devices"
        ).fetchall() == [("D", 7, "10.0.0.1", None)]
    finally:
        conn.close()
