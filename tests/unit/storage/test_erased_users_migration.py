"""Migration 0024: the erased_users table; existing accounts keep their rows and nobody is
erased until they ask."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from dendrite_lite.storage import accounts as accounts_table
from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0024_erased_users.sql"


async def test_accounts_kept_and_nobody_erased(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO accounts (user_id, password_hash, is_admin, is_guest, created_ts)"
        " VALUES ('@a:x', 'h', 0, 0, 1)"
    )
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path))[0] == 24
    async with aiosqlite.connect(path) as db:
        async with db.execute("SELECT user_id FROM accounts") as cur:
            assert await cur.fetchall() == [("@a:x",)]
        assert await accounts_table.select_erased_users(db, ["@a:x"]) == set()
        await accounts_table.insert_erased_user(db, "@a:x")
        await accounts_table.insert_erased_user(db, "@a:x")  # twice is once
        assert await accounts_table.select_erased_users(db, ["@a:x", "@b:x"]) == {"@a:x"}
