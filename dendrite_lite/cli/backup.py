"""`dendrite-lite backup DEST` and `dendrite-lite restore SRC`: the whole server (database,
media, signing key, config, ACME state) into a directory and back. Both are backup/'s work; a
backup is safe while the server runs, a restore refuses to run under one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite.backup.create import BackupError, make_backup
from dendrite_lite.backup.restore import backup_config, restore_backup
from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    EXIT_REFUSED,
    ConfigOption,
    fail,
    load_config_or_exit,
)

__all__ = ["backup", "restore"]


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def backup(
    dest: Annotated[Path, typer.Argument(help="A new directory to write the backup into.")],
    config_path: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Back up the whole server into a new directory, **while it runs**.

    The database (one consistent snapshot, with SQLite's backup API), every media file it names,
    the signing key, the config file and the ACME account and certificate. Copy the directory to
    another disk or machine; `dendrite-lite restore DIR` puts it back.
    """
    config = load_config_or_exit(config_path)
    try:
        summary = make_backup(config, dest)
    except BackupError as e:
        fail(str(e), code=EXIT_REFUSED)
    typer.echo(f"backup written to {summary.path}")
    typer.echo(
        f"  database  {_size(summary.database_bytes)} (schema {summary.schema_version})"
    )
    typer.echo(f"  media     {summary.media_files} files, {_size(summary.media_bytes)}")
    if summary.media_rows_dropped:
        typer.echo(
            f"            ({summary.media_rows_dropped} media deleted while the backup ran are "
            "left out)"
        )
    extras = ["signing key"] + (["config"] if summary.with_config else [])
    extras += ["ACME account and certificate"] if summary.with_acme else []
    typer.echo(f"  also      {', '.join(extras)}")


def restore(
    source: Annotated[Path, typer.Argument(help="A backup directory (from `dendrite-lite backup`).")],
    config_path: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the data of the server the config names."),
    ] = False,
) -> None:
    """Restore a backup into the data directory the config names.

    With no config file at --config yet (a new machine), the backup's own config is written
    there first, so its relative paths (./data) land beside it. The backup is checked before
    anything is written: its manifest, `PRAGMA integrity_check`, its schema against this version,
    its media files. A running server's data is never replaced; other existing data only with
    --force. Start the server afterwards with `dendrite-lite run`.
    """
    if not config_path.exists():
        packed = backup_config(source)
        if packed is None:
            fail(
                f"no config file at {config_path}, and {source} has none to restore",
                hint="Write one with `dendrite-lite init`, then restore into it.",
            )
        config_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(packed, config_path)
        typer.echo(f"config restored to {config_path}")
    config = load_config_or_exit(config_path)
    try:
        summary = restore_backup(source, config, force=force)
    except BackupError as e:
        fail(str(e), code=EXIT_REFUSED)
    typer.echo(f"restored {summary.server_name or 'the server'} from {source}")
    typer.echo(f"  database  {summary.database_path} (schema {summary.schema_version})")
    typer.echo(f"  media     {summary.media_files} files in {summary.media_path}")
    typer.echo(f"Start it with `dendrite-lite run --config {config_path}`.")
