"""Migrations: applied in order and recorded; newer schemas refused; failures leave no trace."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    SchemaTooNew,
    apply_migrations,
    discover_migrations,
    split_sql,
)


def _snapshot(path: Path) -> tuple[list[tuple], dict[str, list[tuple]]]:
    """Everything a migration could change: the schema and every row of every table."""
    conn = sqlite3.connect(path)
    try:
        schema = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        rows = {
            name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall())
            for (kind, name, _, _) in schema
            if kind == "table"
        }
        return schema, rows
    finally:
        conn.close()


def _copy_migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    return directory


# Later issues add shipped migrations; test files go after the newest one.
NEXT = len(discover_migrations()) + 1


def _next_file(directory: Path, name: str, offset: int = 0) -> Path:
    return directory / f"{NEXT + offset:04d}_{name}.sql"


async def test_fresh_database_gets_every_migration_recorded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    applied = await apply_migrations(path)
    shipped = discover_migrations()
    assert [m.version for m in applied] == [m.version for m in shipped]
    assert shipped[0].version == 1 and shipped[0].name == "init"
    conn = sqlite3.connect(path)
    try:
        recorded = conn.execute("SELECT version, name, applied_ts FROM schema_version").fetchall()
        assert [(v, n) for v, n, _ in recorded] == [(m.version, m.name) for m in shipped]
        assert all(ts > 1_600_000_000_000 for _, _, ts in recorded)  # milliseconds
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"accounts", "devices", "access_tokens", "schema_version"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    # Running again is a no-op.
    assert await apply_migrations(path) == []


async def test_later_migrations_apply_on_top(tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    _next_file(directory, "extra").write_text(
        "CREATE TABLE extra (id INTEGER PRIMARY KEY, note TEXT);\n"
        "INSERT INTO extra (note) VALUES ('semi;colon in a string');\n"
        "-- trailing comment\n"
    )
    applied = await apply_migrations(path, directory=directory)
    assert [(m.version, m.name) for m in applied] == [(NEXT, "extra")]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT note FROM extra").fetchall() == [("semi;colon in a string",)]
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (NEXT,)
    finally:
        conn.close()


async def test_newer_schema_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    await apply_migrations(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (999, 'from_the_future', 1)")
    conn.commit()
    conn.close()
    before = _snapshot(path)
    mtime = path.stat().st_mtime_ns
    with pytest.raises(SchemaTooNew, match="schema version 999.*newer dendrite-lite"):
        await apply_migrations(path)
    with pytest.raises(SchemaTooNew):
        await Storage.open(path)
    assert _snapshot(path) == before
    assert path.stat().st_mtime_ns == mtime


async def test_broken_migration_leaves_database_unchanged(tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO accounts (user_id, created_ts) VALUES ('@a:x', 1)")
    conn.commit()
    conn.close()
    before = _snapshot(path)
    # Statements that succeed (a new table, a changed row, a dropped column) and then one that fails.
    _next_file(directory, "broken").write_text(
        "CREATE TABLE half_done (x INTEGER);\n"
        "UPDATE accounts SET displayname = 'changed';\n"
        "ALTER TABLE accounts DROP COLUMN avatar_url;\n"
        "INSERT INTO no_such_table VALUES (1);\n"
    )
    with pytest.raises(MigrationError, match=f"{NEXT:04d}_broken.sql.*no_such_table"):
        await apply_migrations(path, directory=directory)
    assert _snapshot(path) == before


async def test_an_upgrade_is_one_transaction_with_a_line_per_migration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = _copy_migrations(tmp_path)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    before = _snapshot(path)
    # Two good migrations, then a broken one: the good ones must not stay applied either, so
    # the dendrite-lite that ran this database before the upgrade can still run it.
    _next_file(directory, "first").write_text("CREATE TABLE first_new (x INTEGER);\n")
    _next_file(directory, "second", 1).write_text("CREATE TABLE second_new (x INTEGER);\n")
    _next_file(directory, "broken", 2).write_text("INSERT INTO no_such_table VALUES (1);\n")
    with pytest.raises(MigrationError, match=f"{NEXT + 2:04d}_broken.sql"):
        await apply_migrations(path, directory=directory)
    assert _snapshot(path) == before

    _next_file(directory, "broken", 2).write_text("CREATE TABLE third_new (x INTEGER);\n")
    with caplog.at_level("INFO", logger="dendrite_lite.storage.migrations"):
        applied = await apply_migrations(path, directory=directory)
    assert [m.version for m in applied] == [NEXT, NEXT + 1, NEXT + 2]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        f"database {path}: upgrading schema {NEXT - 1} to {NEXT + 2} (3 migrations, one transaction)"
    )
    assert [line.split(" applied in ")[0] for line in lines[1:]] == [
        f"migration 1/3: {NEXT:04d}_first.sql",
        f"migration 2/3: {NEXT + 1:04d}_second.sql",
        f"migration 3/3: {NEXT + 2:04d}_broken.sql",
    ]


async def test_migration_breaking_foreign_keys_is_refused(tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    before = _snapshot(path)
    _next_file(directory, "orphan").write_text(
        "INSERT INTO devices (user_id, device_id, created_ts) VALUES ('@ghost:x', 'D', 1);\n"
    )
    with pytest.raises(MigrationError, match="foreign keys"):
        await apply_migrations(path, directory=directory)
    assert _snapshot(path) == before


def test_migration_numbers_must_be_consecutive(tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    gap = _next_file(directory, "gap", offset=1)
    gap.write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=f"{gap.name}.*expected migration number {NEXT:04d}"):
        discover_migrations(directory)
    gap.unlink()
    (directory / "2_badname.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        discover_migrations(directory)


def test_split_sql_respects_strings_comments_and_triggers() -> None:
    script = (
        "-- header; with a semicolon\n"
        "CREATE TABLE t (x TEXT);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET x = 'a;b' WHERE x = 'c';\n"
        "END;\n"
        "INSERT INTO t VALUES (';'); INSERT INTO t VALUES ('2');\n"
    )
    statements = split_sql(script)
    assert len(statements) == 4
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO t VALUES (';');"
    with pytest.raises(MigrationError, match="terminating"):
        split_sql("CREATE TABLE t (x TEXT)")


async def test_two_processes_migrating_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "db.sqlite"
    first, second = await asyncio.gather(apply_migrations(path), apply_migrations(path))
    shipped = [m.version for m in discover_migrations()]
    assert sorted(m.version for m in first + second) == shipped
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == shipped
    finally:
        conn.close()


async def test_many_processes_creating_a_new_database_together_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL under another connection's lock used to fail at once with
    # "database is locked" (no busy wait for journal mode changes): ~3 of 180 openers failed.
    import asyncio

    for i in range(30):
        path = tmp_path / f"db{i}.sqlite"
        results = await asyncio.gather(*(apply_migrations(path) for _ in range(3)), return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert sum(len(r) for r in results if isinstance(r, list)) == len(discover_migrations())


async def test_push_actions_rekeyed_by_room_keep_their_rows(tmp_path: Path) -> None:
    # 0012 rebuilds event_push_actions with another primary key; rows written before must stay.
    directory = _copy_migrations(tmp_path)
    for later in sorted(directory.glob("*.sql")):
        if int(later.name[:4]) >= 12:
            later.rename(tmp_path / later.name)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    rows = [("@a:x", "!r:x", 5, 1, "main"), ("@b:x", "!r:x", 5, 0, "$root"), ("@a:x", "!s:x", 2, 0, "main")]
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO event_push_actions (user_id, room_id, stream_ordering, highlight, thread_id)"
        " VALUES (?, ?, ?, ?, ?)", rows,
    )
    conn.commit()
    conn.close()
    (tmp_path / "0012_push_actions_by_room.sql").rename(directory / "0012_push_actions_by_room.sql")
    assert [m.version for m in await apply_migrations(path, directory=directory)] == [12]
    conn = sqlite3.connect(path)
    try:
        got = conn.execute(
            "SELECT user_id, room_id, stream_ordering, highlight, thread_id FROM event_push_actions"
        ).fetchall()
        assert sorted(got) == sorted(rows)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM event_push_actions"
            " WHERE room_id = '!r:x' AND stream_ordering > 1 AND user_id = '@a:x'"
        ).fetchall()
        assert "PRIMARY KEY (room_id=? AND stream_ordering>?)" in plan[0][3]
    finally:
        conn.close()
