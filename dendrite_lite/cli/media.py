"""`dendrite-lite media purge-remote|quarantine|unquarantine|delete|usage`: the media repository
for the server admin, on the database file directly (cli/common.run_on_storage: no server
needed, safe while it runs). The work is media/admin.py's, which the admin API will share.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    EXIT_REFUSED,
    ConfigOption,
    fail,
    load_config_or_exit,
    parse_duration,
    run_on_storage,
)
from dendrite_lite.config import Config
from dendrite_lite.media.admin import MediaAdmin
from dendrite_lite.media.repository import MediaRepository, now_ms
from dendrite_lite.media.store import FileStore
from dendrite_lite.storage import Storage

__all__ = ["app"]

app = typer.Typer(help="The media repository: cached remote media, quarantine, deletion.", no_args_is_help=True)

MxcArgument = Annotated[str, typer.Argument(metavar="MXC_URI", help="mxc://server/mediaId")]


def _admin(config: Config, storage: Storage) -> MediaAdmin:
    return MediaAdmin(MediaRepository(storage, FileStore(config.media_path)), config.server.server_name)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _mxc(uri: str) -> tuple[str, str]:
    server_name, _, media_id = uri.removeprefix("mxc://").partition("/")
    if not uri.startswith("mxc://") or not server_name or not media_id or "/" in media_id:
        fail(f"{uri!r} is not an mxc:// URI (mxc://server/mediaId)")
    return server_name, media_id


@app.command("purge-remote")
def purge_remote(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", metavar="DURATION",
            help="Delete copies nobody read for this long: a number and m, h, d or w (30d).",
        ),
    ],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Delete the cached copies of other servers' media that nobody read lately, and old URL
    preview images; a copy asked for again is fetched again."""
    cfg = load_config_or_exit(config)
    before = now_ms() - parse_duration(older_than, "--older-than") * 1000
    result = run_on_storage(cfg, lambda storage: _admin(cfg, storage).purge_remote(before))
    typer.echo(f"Deleted {result.media} cached copies ({_size(result.bytes)}).")


def _set_quarantined(uri: str, quarantined: bool, config: ConfigOption) -> None:
    cfg = load_config_or_exit(config)
    server_name, media_id = _mxc(uri)
    if not run_on_storage(cfg, lambda s: _admin(cfg, s).set_quarantined(server_name, media_id, quarantined)):
        fail(f"there is no media {uri}", code=EXIT_REFUSED)
    typer.echo(f"{uri} is {'quarantined: served to nobody' if quarantined else 'served again'}.")


@app.command("quarantine")
def quarantine(uri: MxcArgument, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Stop serving a media file to anyone (it stays on disk; `unquarantine` undoes it)."""
    _set_quarantined(uri, True, config)


@app.command("unquarantine")
def unquarantine(uri: MxcArgument, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Serve a quarantined media file again."""
    _set_quarantined(uri, False, config)


@app.command("delete")
def delete(uri: MxcArgument, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Delete a media file, its thumbnails, and its file on disk unless other media share it."""
    cfg = load_config_or_exit(config)
    server_name, media_id = _mxc(uri)
    if not run_on_storage(cfg, lambda s: _admin(cfg, s).delete(server_name, media_id)):
        fail(f"there is no media {uri}", code=EXIT_REFUSED)
    typer.echo(f"Deleted {uri}.")


@app.command("usage")
def usage(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """How much media the database knows of: our users' uploads and cached remote media."""
    cfg = load_config_or_exit(config)
    totals = run_on_storage(cfg, lambda s: _admin(cfg, s).totals())
    typer.echo(f"Uploaded here: {totals.local_count} ({_size(totals.local_bytes)})")
    typer.echo(f"Cached from other servers: {totals.remote_count} ({_size(totals.remote_bytes)})")
