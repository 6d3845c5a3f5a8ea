"""The `dendrite-lite` command: init, run, config check, generate-keys, create-account,
registration-token, doctor, version.

Commands are thin: they read the config (cli.common), call one piece of the server, and print
what a self-hoster needs to know. The server (Quart, Hypercorn) is imported only by `run`.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated, Optional

import typer

from dendrite_lite import __version__
from dendrite_lite.cli import accounts, doctor, registration_tokens, tls
from dendrite_lite.cli.common import DEFAULT_CONFIG, ConfigOption, fail, load_config_or_exit
from dendrite_lite.cli.init_wizard import (
    REGISTRATION_MODES,
    TLS_MODES,
    InitAnswers,
    answers_from_flags,
    ask_answers,
    check_localpart,
    config_from_answers,
    read_password_file,
    write_install,
)
from dendrite_lite.config import Config, ConfigError
from dendrite_lite.crypto.keys import (
    KeyFileError,
    load_signing_key,
    new_server_key,
    write_signing_key,
)
from dendrite_lite.errors import MatrixError

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
config_app = typer.Typer(help="Look at the config file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.command("create-account")(accounts.create_account)
app.add_typer(registration_tokens.app, name="registration-token")
app.command("doctor")(doctor.doctor)
app.add_typer(tls.app, name="tls")


def main() -> None:
    app(prog_name="dendrite-lite")


@app.command()
def init(
    config: ConfigOption = DEFAULT_CONFIG,
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="Ask nothing: take every answer from flags.")
    ] = False,
    server_name: Annotated[
        Optional[str],
        typer.Option(help="The domain in user IDs (@alice:example.org). Cannot change later."),
    ] = None,
    public_baseurl: Annotated[
        Optional[str],
        # "\\<": help is markdown (rich_markup_mode), where a bare <server-name> is an HTML tag
        # and vanishes from --help.
        typer.Option(help="The https:// URL clients use. Default: https://\\<server-name>/."),
    ] = None,
    data_dir: Annotated[
        Optional[Path],
        typer.Option(help="Where the database, media and key live. Default: ./data by the config."),
    ] = None,
    tls_mode: Annotated[
        Optional[str],
        typer.Option(
            help="proxy: a reverse proxy does HTTPS (default); acme: automatic Let's Encrypt;"
            " files: your own certificate (--tls-cert, --tls-key).",
        ),
    ] = None,
    tls_cert: Annotated[
        Optional[Path], typer.Option(help="PEM certificate chain, with --tls-mode files.")
    ] = None,
    tls_key: Annotated[
        Optional[Path], typer.Option(help="PEM private key, with --tls-mode files.")
    ] = None,
    acme_email: Annotated[
        Optional[str], typer.Option(help="Email for certificate expiry warnings (acme).")
    ] = None,
    registration: Annotated[
        Optional[str],
        typer.Option(
            help="closed: only admins create accounts (default); token: sign-up with a token"
            " you hand out; open: anyone may sign up.",
        ),
    ] = None,
    listen_client: Annotated[
        Optional[str],
        typer.Option(help='Client API address "host:port". Default: 127.0.0.1:8008 (proxy mode).'),
    ] = None,
    listen_federation: Annotated[
        Optional[str],
        typer.Option(help='Federation address "host:port"; "" for none. Default: port 8448.'),
    ] = None,
    client_behind_proxy: Annotated[
        Optional[bool],
        typer.Option(
            "--client-behind-proxy/--client-direct",
            help="With --tls-mode acme or files: your reverse proxy serves the client API, so it"
            " listens in plain HTTP on 127.0.0.1:8008 and only federation (0.0.0.0:8448) serves"
            " the certificate. --client-direct (default): both serve it.",
        ),
    ] = None,
    admin_user: Annotated[
        Optional[str], typer.Option(help="Create this admin account (the name before the ':').")
    ] = None,
    admin_password_file: Annotated[
        Optional[Path],
        typer.Option(help="File holding the admin's password ('-' reads it from stdin)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing config file and signing key.")
    ] = False,
) -> None:
    """Set up a new server: write the config file, a signing key and the data directory.

    Asks a few questions (server name, public URL, data directory, HTTPS and whether a reverse
    proxy serves the client API, who may register, the first admin account), or takes the
    answers from flags with --non-interactive.
    """
    if config.exists() and not force:
        fail(f"{config} already exists; not overwriting it", hint="Use --force to replace it.")
    for mode, flag, choices in (
        (tls_mode, "--tls-mode", TLS_MODES),
        (registration, "--registration", REGISTRATION_MODES),
    ):
        if mode is not None and mode not in choices:
            fail(f"{flag} must be one of {', '.join(choices)}, not {mode!r}")
    if admin_user is not None:
        # The spec asks for lower-case new user names (create-account lower-cases them too).
        admin_user = admin_user.lower()
        try:
            check_localpart(admin_user)
        except ConfigError as e:
            fail(f"--admin-user: {e}")
    flags = InitAnswers(
        server_name=server_name,
        public_baseurl=public_baseurl,
        data_dir=data_dir,
        tls_mode=tls_mode,
        tls_cert=tls_cert,
        tls_key=tls_key,
        acme_email=acme_email,
        registration=registration,
        listen_client=listen_client,
        listen_federation=listen_federation,
        client_behind_proxy=client_behind_proxy,
        admin_user=admin_user,
        admin_password=read_password_file(admin_password_file) if admin_password_file else None,
    )
    answers = (
        answers_from_flags(flags, config) if non_interactive else ask_answers(flags, config)
    )
    try:
        cfg = config_from_answers(answers, config)
    except ConfigError as e:
        fail(str(e))
    key = write_install(cfg, config, force=force)
    typer.echo(f"Wrote {config} and the signing key {key.key_id} ({cfg.signing_key_path}).")
    if answers.admin_user is not None and answers.admin_password is not None:
        _create_first_admin(cfg, answers.admin_user, answers.admin_password, config)
    next_steps = (
        "\nNext steps:\n"
        f"  dendrite-lite config check --config {config}   # look over the settings\n"
        f"  dendrite-lite run --config {config}            # start the server"
    )
    if not cfg.client_tls and cfg.tls.mode != "proxy":
        # The appliance layout: the proxy the user runs must know where to forward.
        next_steps += (
            f"\n  # point your reverse proxy's client API at http://{cfg.listen.client}"
        )
    if cfg.registration.mode == "token":
        # Token registration is useless until the admin knows how to hand out a token.
        next_steps += (
            f"\n  dendrite-lite registration-token create --config {config}"
            "   # a token someone can sign up with"
        )
    typer.echo(next_steps)


def _create_first_admin(config: Config, localpart: str, password: str, config_path: Path) -> None:
    # Looked up at call time, so the accounts module stays the one place that owns it.
    from dendrite_lite.cli.accounts import create_first_admin
    from dendrite_lite.storage import MigrationError, SchemaTooNew

    try:
        user_id = create_first_admin(config, localpart, password)
    except (MatrixError, SchemaTooNew, MigrationError) as e:
        reason = e.error if isinstance(e, MatrixError) else str(e)
        fail(
            f"the admin account {localpart!r} was not created: {reason}",
            code=1,
            hint=(
                "The config and signing key are written. Create an admin later with\n"
                f"  dendrite-lite create-account NAME --admin --config {config_path}"
            ),
        )
    typer.echo(f"Created the admin account {user_id}.")


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

    from dendrite_lite.storage.server_identity import ServerNameChanged, check_server_name

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
        Optional[Path],
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
    from dendrite_lite.spec_versions import SUPPORTED_VERSIONS
    from dendrite_lite.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS

    typer.echo(f"dendrite-lite {__version__} (Python {platform.python_version()})")
    typer.echo(f"Matrix client-server API versions: {', '.join(SUPPORTED_VERSIONS)}")
    typer.echo(
        f"Room versions: {', '.join(KNOWN_ROOM_VERSIONS)}"
        f" (new rooms use {DEFAULT_ROOM_VERSION.identifier}"
        " unless server.default_room_version says otherwise)"
    )
