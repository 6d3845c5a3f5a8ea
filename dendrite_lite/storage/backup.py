"""The database side of backups: an online snapshot taken with SQLite's backup API, and what a
restore checks before it trusts a copy.

These are blocking functions on plain `sqlite3` connections of their own (callers run them in a
thread): a backup must work from `dendrite-lite backup` in another process while the server
writes, and SQLite's backup API is what makes that safe. Copied in one step, the snapshot is one
read transaction of the live database: every event with the state it was stored with, never a
half-written group commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "delete_media_rows",
    "integrity_problems",
    "select_media_hashes",
    "select_schema_version",
    "snapshot_database",
]

_SELECT_MEDIA_HASHES = """
SELECT sha256 FROM media WHERE sha256 IS NOT NULL
UNION
SELECT sha256 FROM media_thumbnails
"""
_DELETE_THUMBNAILS_BY_HASH = "DELETE FROM media_thumbnails WHERE sha256 = ?"
_DELETE_MEDIA_BY_HASH = "DELETE FROM media WHERE sha256 = ?"
_SELECT_SCHEMA_VERSION = "SELECT MAX(version) FROM schema_version"
_SELECT_HAS_SCHEMA_TABLE = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
)
# Readers wait this long for the live writer's lock instead of failing at once.
_BUSY_TIMEOUT_S = 30.0


def snapshot_database(source: Path, target: Path) -> None:
    """Copy the live database at `source` into a new single-file database at `target`."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
    try:
        dst = sqlite3.connect(target)
        try:
            # pages=-1: all pages under one read lock, so the copy is one consistent moment.
            src.backup(dst, pages=-1)
            # The copy inherits WAL mode; a backup is one self-contained file (the server turns
            # WAL back on when it opens the restored database).
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
            dst.commit()
        finally:
            dst.close()
    finally:
        src.close()


def select_media_hashes(db: Path) -> set[str]:
    """The SHA-256 of every media file (originals and thumbnails) the database refers to."""
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute(_SELECT_MEDIA_HASHES)}
    finally:
        conn.close()


def delete_media_rows(db: Path, sha256s: Iterable[str]) -> int:
    """Forget the media whose files are gone; returns how many media rows were deleted."""
    conn = sqlite3.connect(db)
    try:
        deleted = 0
        with conn:
            for sha256 in sha256s:
                conn.execute(_DELETE_THUMBNAILS_BY_HASH, (sha256,))
                deleted += conn.execute(_DELETE_MEDIA_BY_HASH, (sha256,)).rowcount
        return deleted
    finally:
        conn.close()


def integrity_problems(db: Path) -> list[str]:
    """What `PRAGMA integrity_check` finds wrong (empty when the file is sound)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as e:
        return [str(e)]
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as e:
        return [str(e)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def select_schema_version(db: Path) -> int:
    """The newest migration applied to the database file (0 for a database without any)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        if conn.execute(_SELECT_HAS_SCHEMA_TABLE).fetchone() is None:
            return 0
        (version,) = conn.execute(_SELECT_SCHEMA_VERSION).fetchone()
        return version or 0
    finally:
        conn.close()
