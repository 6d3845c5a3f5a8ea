"""`dendrite-lite init`: the answers a new server needs, asked or taken from flags, and the files.

The same answers come from the interactive wizard or from flags (--non-interactive), and both go
through parse_config, so a bad answer gets the same message as the same mistake in the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from dendrite_lite.cli.common import fail
from dendrite_lite.config import Config, ConfigError, check_option, parse_config
from dendrite_lite.config_template import render_config
from dendrite_lite.crypto.keys import ServerKey, new_server_key, write_signing_key

__all__ = [
    "InitAnswers",
    "answers_from_flags",
    "ask_answers",
    "config_from_answers",
    "read_password_file",
    "write_install",
]

TLS_MODES = ("proxy", "acme", "files")
REGISTRATION_MODES = ("closed", "token", "open")
# content/appendices.md §User Identifiers: the localpart characters of a new user id.
_LOCALPART_RE = re.compile(r"[a-z0-9._=\-/+]+")


@dataclass(frozen=True)
class InitAnswers:
    """Everything init needs. None in a flag-built instance means "not given"."""

    server_name: str | None = None
    public_baseurl: str | None = None
    data_dir: Path | None = None
    tls_mode: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    acme_email: str | None = None
    registration: str | None = None
    listen_client: str | None = None
    listen_federation: str | None = None
    # With tls_mode acme/files: True when the user's reverse proxy serves the client API (it
    # then listens in plain HTTP on 127.0.0.1, and only federation serves the certificate).
    client_behind_proxy: bool | None = None
    listen_client_tls: bool | None = None  # None: unset in the file (follows tls.mode)
    listen_federation_tls: bool | None = None
    admin_user: str | None = None
    admin_password: str | None = None


@dataclass(frozen=True)
class _Listeners:
    client: str
    federation: str
    client_tls: bool | None  # None: not written, so it follows tls.mode
    federation_tls: bool | None


def _default_listeners(tls_mode: str, client_behind_proxy: bool) -> _Listeners:
    # Behind a proxy only the proxy talks to us; with our own TLS we face the internet directly.
    if tls_mode == "proxy":
        return _Listeners("127.0.0.1:8008", "127.0.0.1:8448", None, None)
    if client_behind_proxy:
        # The appliance layout: the user's proxy serves the client API (plain HTTP to us, on
        # loopback only); other servers reach federation directly, with our certificate. Written
        # out, since it differs from what tls.mode alone implies.
        return _Listeners("127.0.0.1:8008", "0.0.0.0:8448", False, True)
    return _Listeners("0.0.0.0:443", "0.0.0.0:8448", None, None)


def answers_from_flags(flags: InitAnswers, config_path: Path) -> InitAnswers:
    """--non-interactive: defaults for what the flags left out; the server name is required."""
    if not flags.server_name:
        fail("--server-name is required with --non-interactive (e.g. --server-name example.org)")
    if flags.admin_user is not None and flags.admin_password is None:
        fail("--admin-user needs --admin-password-file with --non-interactive")
    if flags.admin_password is not None and flags.admin_user is None:
        fail("--admin-password-file needs --admin-user")
    if flags.client_behind_proxy is False and (flags.tls_mode or "proxy") == "proxy":
        fail(
            "--client-direct needs --tls-mode acme or files (with --tls-mode proxy a reverse"
            " proxy does HTTPS for both listeners)"
        )
    if flags.tls_mode == "files":
        for key, path in (("cert_path", flags.tls_cert), ("key_path", flags.tls_key)):
            if path is None:
                continue  # config_from_answers names the missing key
            try:
                check_existing_file("tls", key)(str(path))
            except ConfigError as e:
                fail(str(e))
    return _fill_defaults(flags, config_path)


def _fill_defaults(answers: InitAnswers, config_path: Path) -> InitAnswers:
    tls_mode = answers.tls_mode or "proxy"
    # Without the question answered, a certificate mode serves both listeners (as before).
    behind_proxy = tls_mode == "proxy" or bool(answers.client_behind_proxy)
    listeners = _default_listeners(tls_mode, behind_proxy)
    client = answers.listen_client if answers.listen_client is not None else listeners.client
    federation = (
        answers.listen_federation if answers.listen_federation is not None else listeners.federation
    )
    # No federation listener: federation goes through the client listener, with its TLS.
    federation_tls = listeners.federation_tls if federation else None
    return dataclasses.replace(
        answers,
        public_baseurl=answers.public_baseurl or f"https://{answers.server_name}/",
        data_dir=answers.data_dir or config_path.parent / "data",
        tls_mode=tls_mode,
        acme_email=answers.acme_email or "",
        registration=answers.registration or "closed",
        listen_client=client,
        listen_federation=federation,
        client_behind_proxy=behind_proxy,
        listen_client_tls=listeners.client_tls,
        listen_federation_tls=federation_tls,
    )


def ask_answers(flags: InitAnswers, config_path: Path) -> InitAnswers:
    """The interactive wizard: asks for every answer the flags did not give."""
    typer.echo(
        "This sets up a new dendrite-lite server. Press Enter to take the [default].\n"
        f"It writes {config_path}, a signing key and the data directory.\n"
    )
    server_name = flags.server_name or _ask(
        "Server name: the domain in user IDs like @alice:example.org (cannot change later)",
        None,
        _check("server", "server_name"),
    )
    public_baseurl = flags.public_baseurl or _ask(
        "Public URL where clients reach this server",
        f"https://{server_name}/",
        _check("server", "public_baseurl"),
    )
    data_dir = flags.data_dir or Path(
        _ask(
            "Data directory (database, media, signing key; back it up)",
            str(config_path.parent / "data"),
            _check("server", "data_dir"),
        )
    )
    tls_mode = flags.tls_mode or _choose(
        "HTTPS: proxy = a reverse proxy (Caddy, nginx) does it; acme = automatic Let's Encrypt\n"
        "certificates (ports 80 and 443 must reach this machine); files = your own certificate",
        TLS_MODES,
        "tls",
        "mode",
    )
    tls_cert, tls_key, acme_email = flags.tls_cert, flags.tls_key, flags.acme_email
    if tls_mode == "files":
        tls_cert = _ask_file("Certificate chain file (PEM)", tls_cert, "cert_path")
        tls_key = _ask_file("Private key file (PEM)", tls_key, "key_path")
    if tls_mode == "acme" and acme_email is None:
        acme_email = _ask(
            "Email for certificate expiry warnings (optional)", "", _check("tls", "acme_email")
        )
    client_behind_proxy = flags.client_behind_proxy
    if tls_mode != "proxy" and client_behind_proxy is None:
        client_behind_proxy = typer.confirm(
            "Does a reverse proxy on this machine (Caddy, nginx) already serve the client API?\n"
            "Then the client API listens on 127.0.0.1:8008 in plain HTTP for it, and only\n"
            "federation (port 8448) serves the certificate",
            default=False,
        )
    registration = flags.registration or _choose(
        "Registration: closed = only you create accounts; token = people you give a token may\n"
        "sign up; open = anyone may sign up (attracts spam bots)",
        REGISTRATION_MODES,
        "registration",
        "mode",
    )
    admin_user, admin_password = flags.admin_user, flags.admin_password
    if admin_user is None and typer.confirm("Create the first admin account now?", default=True):
        admin_user = _ask(
            "Admin user name (the part before the ':')", "admin", check_localpart
        ).lower()
    if admin_user is not None and admin_password is None:
        admin_password = _ask_password()
    asked = dataclasses.replace(
        flags,
        server_name=server_name,
        public_baseurl=public_baseurl,
        data_dir=data_dir,
        tls_mode=tls_mode,
        tls_cert=tls_cert,
        tls_key=tls_key,
        acme_email=acme_email,
        client_behind_proxy=client_behind_proxy,
        registration=registration,
        admin_user=admin_user,
        admin_password=admin_password,
    )
    return _fill_defaults(asked, config_path)


def _ask(question: str, default: str | None, check: Callable[[str], object]) -> str:
    """Ask until the answer passes `check`; a failed check prints why and asks again."""
    while True:
        answer: str = typer.prompt(question, default=default, show_default=bool(default))
        try:
            check(answer.strip())
        except ConfigError as e:
            typer.echo(f"  {e}", err=True)
            continue
        return answer.strip()


def _ask_file(question: str, given: Path | None, key: str) -> Path:
    """A TLS file: the flag's path if that file exists, else asked until it does."""
    check = check_existing_file("tls", key)
    if given is not None:
        try:
            check(str(given))
            return given
        except ConfigError as e:
            typer.echo(f"  {e}", err=True)
    return Path(_ask(question, None, check))


def _choose(question: str, choices: tuple[str, ...], section: str, key: str) -> str:
    # The loader's enum check (not a prompt type), so the message matches the config file's.
    answer = _ask(f"{question}\n({'/'.join(choices)})", choices[0], _check(section, key))
    return answer.lower()


def _ask_password() -> str:
    while True:
        password: str = typer.prompt(
            "Admin password", hide_input=True, confirmation_prompt="Repeat the password"
        )
        if password:
            return password
        typer.echo("  The password must not be empty.", err=True)


def _check(section: str, key: str) -> Callable[[str], object]:
    # The loader's own validator, so the wizard and the config file agree on what is valid.
    return lambda value: check_option(section, key, value)


def check_existing_file(section: str, key: str) -> Callable[[str], object]:
    """The loader's check plus "the file is there": the server opens it at start, and `config
    check` fails on a missing one, so init must not write a config naming it. Relative paths are
    from the current directory, as config_from_answers writes them."""

    def check(value: str) -> None:
        path = check_option(section, key, value)
        if path is None:
            raise ConfigError(f"{section}.{key}: required (a path to a PEM file)")
        if not path.exists():
            raise ConfigError(f"{section}.{key}: {path} does not exist")
        if not path.is_file():
            raise ConfigError(f"{section}.{key}: {path} is not a file")

    return check


def check_localpart(name: str) -> None:
    if not _LOCALPART_RE.fullmatch(name.lower()):
        raise ConfigError(
            f"{name!r} is not a valid user name (use lowercase letters, digits and . _ = - / +)"
        )


def read_password_file(path: Path) -> str:
    """The password from a file ("-" = stdin), without the newline an editor or echo adds."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as e:
        fail(f"cannot read the password file {path}: {e.strerror or e}")
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        fail(f"the password file {path} is empty")
    return password


def config_from_answers(answers: InitAnswers, config_path: Path) -> Config:
    """Build (and validate) the Config the answers describe; relative paths are from the cwd."""
    tls: dict[str, Any] = {"mode": answers.tls_mode, "acme_email": answers.acme_email or ""}
    if answers.tls_cert is not None:
        tls["cert_path"] = str(Path.cwd() / answers.tls_cert)
    if answers.tls_key is not None:
        tls["key_path"] = str(Path.cwd() / answers.tls_key)
    assert answers.data_dir is not None  # filled by answers_from_flags/ask_answers
    data = {
        "server": {
            "server_name": answers.server_name,
            "public_baseurl": answers.public_baseurl,
            # A flag or typed path means "from where I am", not "from the config's directory".
            "data_dir": str(Path.cwd() / answers.data_dir.expanduser()),
        },
        "listen": {
            "client": answers.listen_client,
            "federation": answers.listen_federation,
            **_tls_switches(answers),
        },
        "tls": tls,
        "registration": {"mode": answers.registration},
    }
    return parse_config(data, config_path)


def _tls_switches(answers: InitAnswers) -> dict[str, bool]:
    # Only the switches init decided are written; unset ones follow tls.mode.
    switches = {
        "client_tls": answers.listen_client_tls,
        "federation_tls": answers.listen_federation_tls,
    }
    return {key: value for key, value in switches.items() if value is not None}


def write_install(config: Config, config_path: Path, *, force: bool) -> ServerKey:
    """Create the data directory (0700), the signing key (0600) and the config file (0600)."""
    existing = [p for p in (config_path, config.signing_key_path) if p.exists()]
    if existing and not force:
        fail(
            f"{existing[0]} already exists; not overwriting it",
            hint=(
                "Use --force to replace it. Replacing the signing key of a server that already\n"
                "federates can leave other servers unable to verify its older events."
            ),
        )
    data_dir = config.server.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # mkdir's mode is filtered by the umask, and the dir may exist
    key = new_server_key()
    write_signing_key(config.signing_key_path, key, overwrite=force)
    text = render_config(config, relative_to=config_path.resolve().parent)
    _write_private(config_path, text)
    return key


def _write_private(path: Path, text: str) -> None:
    # 0600 because the file can hold secrets (registration.shared_secret); written to a temporary
    # name first so an interrupted init never leaves half a config behind.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
