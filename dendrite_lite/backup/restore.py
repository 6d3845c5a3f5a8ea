"""Restoring a backup (backup/create.py) into the paths a config names: `restore_backup`.

Checks before anything is written, each with a message a person can act on:
- the directory is a backup of a format we read, its database passes `PRAGMA integrity_check`,
  and its schema is not newer than this version knows (`dendrite-lite run` migrates an older one
  forward when it starts);
- every media file its database names is in it;
- no server is running on the target (its admin socket answers): restoring under a live server
  would hand it a database changed behind its back, so this is refused even with --force;
- the target holds no database, media or signing key yet, unless `force`.

The database is copied next to its final name and renamed over it, after the old database's WAL
and shared-memory files are removed (a stale WAL replayed onto a restored database corrupts it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from dendrite_lite.backup.create import (
    ACME,
    CONFIG,
    DATABASE,
    FORMAT,
    MANIFEST,
    MEDIA,
    SIGNING_KEY,
    BackupError,
)
from dendrite_lite.config import Config
from dendrite_lite.media.store import FileStore
from dendrite_lite.storage.backup import (
    integrity_problems,
    select_media_hashes,
    select_schema_version,
)
from dendrite_lite.storage.migrations import discover_migrations

__all__ = ["RestoreSummary", "backup_config", "check_backup", "restore_backup", "server_is_running"]


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    server_name: str
    schema_version: int
    media_files: int
    database_path: Path
    media_path: Path


def backup_config(source: Path) -> Path | None:
    """The config file inside a backup, if it has one."""
    path = Path(source) / CONFIG
    return path if path.is_file() else None


def check_backup(source: Path) -> dict[str, object]:
    """The backup's manifest, after checking that the backup can be restored by this version."""
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} is not a dendrite-lite backup (no {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise BackupError(f"{source / MANIFEST} cannot be read: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is a backup format this version does not read")
    db = source / DATABASE
    if not db.is_file():
        raise BackupError(f"{source} has no {DATABASE}")
    problems = integrity_problems(db)
    if problems:
        raise BackupError(f"{db} is damaged (integrity check: {'; '.join(problems[:3])})")
    version = select_schema_version(db)
    newest = discover_migrations()[-1].version
    if version > newest:
        raise BackupError(
            f"{source} was made by a newer dendrite-lite (database schema {version}, this version "
            f"knows up to {newest}); restore it with that version or a later one"
        )
    store = FileStore(source / MEDIA)
    missing = [h for h in select_media_hashes(db) if not store.exists(h)]
    if missing:
        raise BackupError(f"{source} is incomplete: {len(missing)} media files are missing")
    if not (source / SIGNING_KEY).is_file():
        raise BackupError(f"{source} has no {SIGNING_KEY}")
    return manifest


def server_is_running(config: Config) -> bool:
    """Whether a server answers on the admin socket of this config's data directory."""
    path = config.admin_socket_path
    if not path.exists():
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(str(path))
    except OSError:
        return False  # a socket file a dead server left behind
    finally:
        sock.close()
    return True


def restore_backup(source: Path, config: Config, *, force: bool = False) -> RestoreSummary:
    """Copy the backup at `source` into the database, media, key and ACME paths of `config`."""
    source = Path(source)
    manifest = check_backup(source)
    if server_is_running(config):
        raise BackupError(
            f"a server is running on {config.server.data_dir} (its admin socket "
            f"{config.admin_socket_path} answers): stop it before restoring"
        )
    existing = [p for p in _restorable_paths(config) if _holds_data(p)]
    if existing and not force:
        raise BackupError(
            f"{existing[0]} already exists: restoring would replace this server's data "
            "(use --force to replace it)"
        )
    _restore_database(source / DATABASE, config.database_path)
    files = _restore_media(FileStore(source / MEDIA), FileStore(config.media_path), source)
    key = config.signing_key_path
    key.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / SIGNING_KEY, key)
    os.chmod(key, 0o600)
    if (source / ACME).is_dir():
        shutil.copytree(source / ACME, config.acme_dir, dirs_exist_ok=True)
    return RestoreSummary(
        server_name=str(manifest.get("server_name", "")),
        schema_version=select_schema_version(config.database_path),
        media_files=files,
        database_path=config.database_path,
        media_path=config.media_path,
    )


def _restorable_paths(config: Config) -> list[Path]:
    return [config.database_path, config.media_path / "content", config.signing_key_path]


def _holds_data(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def _restore_database(backup_db: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.with_name(target.name + ".restoring")
    shutil.copyfile(backup_db, incoming)
    with open(incoming, "rb") as f:
        os.fsync(f.fileno())
    for suffix in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(incoming, target)


def _restore_media(backup: FileStore, live: FileStore, source: Path) -> int:
    files = 0
    for sha256 in select_media_hashes(source / DATABASE):
        target = live.path_for(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup.path_for(sha256), target)
        files += 1
    return files
