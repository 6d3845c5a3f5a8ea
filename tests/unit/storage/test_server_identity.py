"""Migration 0013 (server_identity) and the server name a database belongs to."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage.migrations import MIGRATIONS_DIR, apply_migrations
from dendrite_lite.storage.server_identity import (
    ServerNameChanged,
    check_server_name,
    claim_server_name,
    recorded_server_name,
)

ACCOUNT_COLUMNS = "user_id, password_hash, is_admin, created_ts"


async def _database_before_0013(tmp_path: Path, accounts: list[tuple]) -> Path:
    """A database as dendrite-lite left it before 0013, with these accounts in it."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    for later in directory.glob("*.sql"):
        if int(later.name[:4]) >= 13:
            later.unlink()
    path = tmp_path / "homeserver.db"
    await apply_migrations(path, directory=directory)
    conn = sqlite3.connect(path)
    conn.executemany(f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?)", accounts)
    conn.commit()
    conn.close()
    return path


def _rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def _claim(path: Path, name: str) -> str:
    storage = await Storage.open(path, readers=1)
    try:
        return await storage.db.write(lambda conn: claim_server_name(conn, name))
    finally:
        await storage.close()


async def test_0013_keeps_accounts_and_records_their_server(tmp_path: Path) -> None:
    accounts = [
        ("@zed:old.example:8448", None, 0, 2000),
        ("@admin:old.example:8448", "$argon2id$x", 1, 1000),  # the oldest names the server
        ("@bob:old.example:8448", "$argon2id$y", 0, 1000),
    ]
    path = await _database_before_0013(tmp_path, accounts)
    # `config check` reads it before any start has migrated the file, and writes nothing.
    assert recorded_server_name(path) == "old.example:8448"
    assert _rows(path, "SELECT MAX(version) FROM schema_version") == [(12,)]

    applied = await apply_migrations(path)
    # 0013 first; later migrations (0014 onwards) follow it.
    assert [m.name for m in applied][0] == "server_name"
    assert sorted(_rows(path, f"SELECT {ACCOUNT_COLUMNS} FROM accounts")) == sorted(accounts)
    assert _rows(path, "SELECT id, server_name FROM server_identity") == [(1, "old.example:8448")]
    # The configured name does not overwrite what the accounts said.
    assert await _claim(path, "new.example") == "old.example:8448"
    with pytest.raises(ServerNameChanged) as e:
        check_server_name(path, "new.example")
    assert '"new.example"' in str(e.value) and '"old.example:8448"' in str(e.value)
    check_server_name(path, "old.example:8448")


async def test_0013_without_accounts_records_the_name_at_the_next_start(tmp_path: Path) -> None:
    path = await _database_before_0013(tmp_path, [])
    assert recorded_server_name(path) is None
    await apply_migrations(path)
    assert _rows(path, "SELECT * FROM server_identity") == []
    assert recorded_server_name(path) is None
    assert await _claim(path, "first.example") == "first.example"
    assert await _claim(path, "second.example") == "first.example"
    assert recorded_server_name(path) == "first.example"


async def test_an_account_made_before_the_first_start_decides(tmp_path: Path) -> None:
    # `init` creates the admin (migrating the new file) before the server ever starts.
    path = tmp_path / "homeserver.db"
    await apply_migrations(path)
    conn = sqlite3.connect(path)
    conn.execute(
        f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES ('@admin:a.example', NULL, 1, 1)"
    )
    conn.commit()
    conn.close()
    assert recorded_server_name(path) == "a.example"
    assert await _claim(path, "b.example") == "a.example"


def test_no_database_yet(tmp_path: Path) -> None:
    assert recorded_server_name(tmp_path / "nothing.db") is None
    check_server_name(tmp_path / "nothing.db", "any.example")
    assert not (tmp_path / "nothing.db").exists()
