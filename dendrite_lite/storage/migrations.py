"""Numbered schema migrations: `migrations/NNNN_name.sql`, applied in order at start.

The pending files run in ONE transaction, each with its row in `schema_version`, and a line is
logged per migration: a database is always exactly at the version it had or at the newest, never
between. A migration that fails (or a crash, or a kill) leaves no trace, so the previous
dendrite-lite still runs the database after a failed upgrade. A database recorded at a
version newer than the newest file here was written by a newer dendrite-lite; we refuse it before
touching anything, because this code would misread tables it does not know.

A shipped migration file is never edited: a database that already ran it would not run it again.
Later changes go in a new file with the next number.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from dendrite_lite.storage.database import BUSY_TIMEOUT_MS

log = logging.getLogger(__name__)

__all__ = [
    "Migration",
    "MigrationError",
    "SchemaTooNew",
    "MIGRATIONS_DIR",
    "apply_migrations",
    "discover_migrations",
    "select_schema_version",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_SCHEMA_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_ts INTEGER NOT NULL
)
"""
_SELECT_TABLE_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
_SELECT_MAX_VERSION = "SELECT MAX(version) FROM schema_version"
_INSERT_VERSION = "INSERT INTO schema_version (version, name, applied_ts) VALUES (?, ?, ?)"


class SchemaTooNew(Exception):
    """The database was written by a newer dendrite-lite than this one."""


class MigrationError(Exception):
    """A migration file is malformed or failed to apply; the database is unchanged by it."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_sql(self.path.read_text(encoding="utf-8"), source=self.path.name)


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in directory, ordered; their numbers must run 1, 2, 3, ... with no gaps."""
    found: list[Migration] = []
    for path in directory.iterdir():
        if path.suffix != ".sql":
            continue
        match = _FILE_RE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{migration.path.name}: expected migration number {expected:04d} "
                "(numbers must be consecutive and unique)"
            )
    return found


def split_sql(text: str, *, source: str = "<sql>") -> list[str]:
    """Split a SQL script into single statements.

    sqlite3's executescript() would be simpler but it COMMITs any open transaction first, which
    would break "one migration, one transaction". complete_statement() knows about string
    literals, comments and trigger bodies, so a ';' inside those does not end a statement.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(text):
        if char == ";" and sqlite3.complete_statement(text[start : index + 1]):
            statements.append(text[start : index + 1].strip())
            start = index + 1
    rest = text[start:]
    if _strip_comments(rest).strip():
        raise MigrationError(f"{source}: the last statement has no terminating ';'")
    return [s for s in statements if _strip_comments(s).strip(" \t\r\n;")]


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


async def select_schema_version(conn: aiosqlite.Connection) -> int:
    """The newest applied version, 0 for a database that has none."""
    async with conn.execute(_SELECT_TABLE_EXISTS) as cur:
        if await cur.fetchone() is None:
            return 0
    async with conn.execute(_SELECT_MAX_VERSION) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


async def apply_migrations(path: Path, *, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Bring the database at path up to the newest migration; return those applied now."""
    migrations = discover_migrations(directory)
    newest = migrations[-1].version if migrations else 0
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        current = await select_schema_version(conn)
        if current > newest:
            raise SchemaTooNew(
                f"database {path} is at schema version {current}, but this dendrite-lite only "
                f"knows versions up to {newest}: it was last used by a newer dendrite-lite. "
                "Upgrade dendrite-lite (or restore a backup taken before the upgrade)."
            )
        if current == newest:
            return []
        await _enable_wal(conn)
        # foreign_keys stays OFF while migrating (SQLite's documented way to rebuild a table);
        # foreign_key_check below still refuses to commit a migration that breaks a reference.
        await conn.execute("PRAGMA foreign_keys = OFF")
        return await _apply_pending(conn, migrations, path)
    finally:
        await conn.close()


async def _enable_wal(conn: aiosqlite.Connection) -> None:
    """PRAGMA journal_mode = WAL, retried while another process holds the file: SQLite answers a
    journal mode change under a lock with "database is locked" at once, without busy_timeout's
    wait (seen when two processes open a new database together)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


async def _apply_pending(
    conn: aiosqlite.Connection, migrations: list[Migration], path: Path
) -> list[Migration]:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_CREATE_SCHEMA_VERSION)
        # Another process (the CLI next to a running server) may have migrated while we waited
        # for the write lock.
        current = await select_schema_version(conn)
        pending = migrations[current:]
        if pending and current > 0:
            log.info(
                "database %s: upgrading schema %d to %d (%d migrations, one transaction)",
                path, current, migrations[-1].version, len(pending),
            )
        for n, migration in enumerate(pending, 1):
            started = time.monotonic()
            await _apply_one(conn, migration)
            if current > 0:
                log.info(
                    "migration %d/%d: %s applied in %.2f s",
                    n, len(pending), migration.path.name, time.monotonic() - started,
                )
        await conn.execute("COMMIT")
        return pending
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise


async def _apply_one(conn: aiosqlite.Connection, migration: Migration) -> None:
    try:
        for statement in migration.statements():
            await conn.execute(statement)
        async with conn.execute("PRAGMA foreign_key_check") as cur:
            broken = await cur.fetchall()
        if broken:
            raise MigrationError(f"it leaves broken foreign keys: {[tuple(r) for r in broken][:5]}")
        await conn.execute(
            _INSERT_VERSION, (migration.version, migration.name, int(time.time() * 1000))
        )
    except (sqlite3.Error, MigrationError) as e:
        raise MigrationError(f"migration {migration.path.name} failed: {e}") from e
