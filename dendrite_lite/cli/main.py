"""The `dendrite-lite` command: init, run, config check, generate-keys, create-account,
registration-token, doctor, media, tui, version.

Commands are thin: they read the config (cli.common), call one piece of the server, and print
what a self-hoster needs to know. The server (Quart, Hypercorn) is imported only by `run`.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite import __version__
from dendrite_lite.cli import accounts, appservice, backup, doctor, install_service, init_command, media, registration_tokens, tls, tui
from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    fail,
    load_config_or_exit,
)
from dendrite_lite.config import Config
from dendrite_lite.crypto.keys import (
    KeyFileError,
    load_signing_key,
    new_server_key,
    write_signing_key,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="dendrite-lite",
    help=(
        "dendrite-lite: a Matrix homeserver for small self-hosters. One process, one SQLite file,"
        " one config file.\n\nNew here? Run `dendrite-lite init`, then `dendrite-lite run`."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Known problems exit with `error: ...`; anything else is a bug and its traceback helps.
    pretty_exceptions_enable=False,
    # Markdown: docstrings rewrap to the terminal width and `commands` stand out.
    rich_markup_mode="markdown",
)
app.command("init")(init_command.init)
config_app = typer.Typer(help="Look at the config file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.command("create-account")(accounts.create_account)
app.add_typer(registration_tokens.app, name="registration-token")
app.command("doctor")(doctor.doctor)
app.add_typer(tls.app, name="tls")
app.add_typer(media.app, name="media")
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)
app.command("install-service")(install_service.install_service)
app.command("tui")(tui.tui)
app.add_typer(appservice.app, name="appservice")


def main() -> None:
    app(prog_name="dendrite-lite")


@app.command()
def run(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Start the server and serve until stopped (Ctrl-C or SIGTERM shut it down cleanly)."""
    load_config_or_exit(config)  # config errors explained here, by the CLI
    from dendrite_lite.server_process import exec_server

    exec_server(config)


@config_app.command("check")
def config_check(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Validate the config file and show the main settings; exit 2 naming the key if it's wrong."""
    cfg = load_config_or_exit(config)
    missing = _missing_files(cfg)
    if missing:
        fail(missing[0], hint="\n".join(f"error: {m}" for m in missing[1:]) or None)
    _check_database_server_name(cfg)
    try:
        key = load_signing_key(cfg.signing_key_path)
        key_status = f"{key.key_id}, {cfg.signing_key_path}"
    except KeyFileError as e:
        if cfg.signing_key_path.exists():
            fail(str(e), hint="Replace it with `dendrite-lite generate-keys --force`.")
        key_status = f"missing: {cfg.signing_key_path} (create it: dendrite-lite generate-keys)"
    federation = (
        f"{cfg.listen.federation} ({_scheme(cfg.federation_tls)})"
        if cfg.listen.federation
        else "off (shares the client listener)"
    )
    if not cfg.federation.enabled:
        federation = "disabled"
    typer.echo(f"OK: {cfg.source_path}")
    for label, value in (
        ("server name", cfg.server.server_name),
        ("public URL", cfg.public_baseurl),
        ("client API", f"{cfg.listen.client} ({_scheme(cfg.client_tls)})"),
        ("federation", federation),
        ("admin socket", cfg.admin_socket_path),
        ("database", f"{cfg.database_path} (synchronous={cfg.database.synchronous})"),
        ("signing key", key_status),
        ("TLS", cfg.tls.mode),
        ("registration", cfg.registration.mode),
    ):
        typer.echo(f"  {label + ':':<14}{value}")


def _scheme(tls: bool) -> str:
    return "HTTPS" if tls else "plain HTTP"


def _check_database_server_name(cfg: Config) -> None:
    # The server refuses to start on a database made for another server_name; say so here first.
    import sqlite3

    from dendrite_lite.storage.server_identity import (
        ServerNameChanged,
        check_server_name,
    )

    try:
        check_server_name(cfg.database_path, cfg.server.server_name)
    except ServerNameChanged as e:
        fail(str(e))
    except sqlite3.Error as e:
        fail(f"database.path: cannot read {cfg.database_path}: {e}")


def _missing_files(cfg: Config) -> list[str]:
    # Files the server will open at start; a typo here would otherwise show only then.
    wanted: list[tuple[str, Path | None]] = [("federation.ca_file", cfg.federation.ca_file)]
    if cfg.tls.mode == "files":
        wanted += [("tls.cert_path", cfg.tls.cert_path), ("tls.key_path", cfg.tls.key_path)]
    return [f"{key}: {path} does not exist" for key, path in wanted if path and not path.exists()]


@app.command("generate-keys")
def generate_keys(
    config: ConfigOption = DEFAULT_CONFIG,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the key to this file instead of the config's signing_key_path."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing key file (other servers refetch it)."),
    ] = False,
) -> None:
    """Write a new ed25519 signing key (Synapse's key file format, readable by this user only)."""
    path = output if output is not None else load_config_or_exit(config).signing_key_path
    key = new_server_key()
    try:
        write_signing_key(path, key, overwrite=force)
    except KeyFileError as e:
        fail(str(e), hint="Use --force to replace it.")
    typer.echo(f"Wrote signing key {key.key_id} to {path}")
    typer.echo(f"Public key: {key.verify_key_base64}")


@app.command()
def version() -> None:
    """Show the dendrite-lite version and the Matrix versions it speaks."""
    from dendrite_lite.events.room_versions import (
        DEFAULT_ROOM_VERSION,
        KNOWN_ROOM_VERSIONS,
    )
    from dendrite_lite.spec_versions import SUPPORTED_VERSIONS

    typer.echo(f"dendrite-lite {__version__} (Python {platform.python_version()})")
    typer.echo(f"Matrix client-server API versions: {', '.join(SUPPORTED_VERSIONS)}")
    typer.echo(
        f"Room versions: {', '.join(KNOWN_ROOM_VERSIONS)}"
        f" (new rooms use {DEFAULT_ROOM_VERSION.identifier}"
        " unless server.default_room_version says otherwise)"
    )
