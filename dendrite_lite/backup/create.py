"""Making a backup: `make_backup(config, dest)`, safe while the server runs.

A backup is a directory:

    manifest.json          what and when (format, server name, version, schema, counts)
    homeserver.db          the database, one self-contained SQLite file
    media/content/ab/cd/…  every media file (originals and thumbnails) the database names
    signing.key            the server's signing key
    dendrite-lite.toml     the config file, when the server was started from one
    acme/                  the ACME account and certificate, when there are any

Consistency: the database is one snapshot (storage/backup.py), and the media files are copied
after it, so every row of the snapshot can find its file: media files are never changed, only
deleted, and a file deleted between the snapshot and its copy (an admin purge) has its rows
removed from the copy too. No row in a backup names a missing file.

The directory is written as DEST.partial and renamed to DEST at the end: a DEST that exists is a
whole backup, even if the machine died while writing one.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from dendrite_lite import __version__
from dendrite_lite.config import Config
from dendrite_lite.media.store import FileStore
from dendrite_lite.storage.backup import (
    delete_media_rows,
    select_media_hashes,
    select_schema_version,
    snapshot_database,
)

__all__ = [
    "ACME",
    "CONFIG",
    "DATABASE",
    "FORMAT",
    "MANIFEST",
    "MEDIA",
    "SIGNING_KEY",
    "BackupError",
    "BackupSummary",
    "make_backup",
]

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "homeserver.db"
MEDIA = "media"
SIGNING_KEY = "signing.key"
CONFIG = "dendrite-lite.toml"
ACME = "acme"


class BackupError(Exception):
    """A backup or restore that cannot be made; the message says why, for a person."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    path: Path
    database_bytes: int
    schema_version: int
    media_files: int
    media_bytes: int
    # Media rows left out: their files were deleted while the backup was being written.
    media_rows_dropped: int
    with_config: bool
    with_acme: bool


def make_backup(config: Config, dest: Path) -> BackupSummary:
    """Write a backup of the server `config` describes into the new directory `dest`.

    Blocking (file copies, SQLite): run it in a thread from async code.
    """
    dest = Path(dest)
    if dest.exists():
        raise BackupError(f"{dest} already exists (a backup goes into a new directory)")
    if not config.database_path.is_file():
        raise BackupError(f"no database at {config.database_path}: nothing to back up")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an earlier attempt that died
    partial.mkdir(parents=True, mode=0o700)
    try:
        summary = _write(config, partial, dest)
        _fsync_tree(partial)
        os.rename(partial, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary


def _write(config: Config, out: Path, final: Path) -> BackupSummary:
    db = out / DATABASE
    try:
        snapshot_database(config.database_path, db)
    except (sqlite3.Error, OSError) as e:
        raise BackupError(f"cannot copy the database {config.database_path}: {e}") from None
    files, size, missing = _copy_media(FileStore(config.media_path), FileStore(out / MEDIA), db)
    dropped = delete_media_rows(db, missing) if missing else 0
    key = config.signing_key_path
    if not key.is_file():
        raise BackupError(f"no signing key at {key}")
    shutil.copy2(key, out / SIGNING_KEY)
    source = config.source_path
    with_config = source is not None and source.is_file()
    if with_config:
        shutil.copy2(source, out / CONFIG)
    with_acme = config.acme_dir.is_dir()
    if with_acme:
        shutil.copytree(config.acme_dir, out / ACME, ignore=shutil.ignore_patterns("*.lock"))
    summary = BackupSummary(
        path=final,
        database_bytes=db.stat().st_size,
        schema_version=select_schema_version(db),
        media_files=files,
        media_bytes=size,
        media_rows_dropped=dropped,
        with_config=with_config,
        with_acme=with_acme,
    )
    _write_manifest(out / MANIFEST, config, summary)
    return summary


def _copy_media(live: FileStore, copy: FileStore, db: Path) -> tuple[int, int, list[str]]:
    files = size = 0
    missing: list[str] = []
    for sha256 in sorted(select_media_hashes(db)):
        source = live.path_for(sha256)
        target = copy.path_for(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(source, target)
        except FileNotFoundError:
            missing.append(sha256)
            continue
        files += 1
        size += target.stat().st_size
    return files, size, missing


def _write_manifest(path: Path, config: Config, summary: BackupSummary) -> None:
    manifest = {
        "format": FORMAT,
        "created_ts": int(time.time() * 1000),
        "server_name": config.server.server_name,
        "dendrite_lite_version": __version__,
        "schema_version": summary.schema_version,
        "database_bytes": summary.database_bytes,
        "media_files": summary.media_files,
        "media_bytes": summary.media_bytes,
        "media_rows_dropped": summary.media_rows_dropped,
        "config": summary.with_config,
        "acme": summary.with_acme,
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def _fsync_tree(root: Path) -> None:
    # A backup that says it is complete must be on disk, files and directory entries alike.
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
