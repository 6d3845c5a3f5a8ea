"""`dendrite-lite init`: the answers a new server needs, asked or taken from flags, and the files.

The same answers come from the interactive wizard (init_questions.py) or from flags
(--non-interactive), and both go through parse_config, so a bad answer gets the same message as
the same mistake in the file. --non-interactive looks nothing up on the network: a script gets
the same file wherever it runs (the public IP is the interface's own address when that is
public, the ACME challenge follows whether port 80 can be bound here).
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

from dendrite_lite.cli.common import fail
from dendrite_lite.cli.init_delegation import acme_names, layout
from dendrite_lite.cli.init_tls import (
    LETS_ENCRYPT_TERMS,
    STAGING_DIRECTORY,
    acme_challenge,
)
from dendrite_lite.config import Config, ConfigError, check_option, parse_config
from dendrite_lite.config_template import render_config
from dendrite_lite.crypto.keys import ServerKey, new_server_key, write_signing_key
from dendrite_lite.delegation.local_ports import PortState, probe_port

__all__ = [
    "DEFAULT_ACME_HTTP",
    "InitAnswers",
    "answers_from_flags",
    "config_from_answers",
    "fill_defaults",
    "read_password_file",
    "write_install",
]

TLS_MODES = ("proxy", "acme", "files")
ACME_CHALLENGES = ("http-01", "tls-alpn-01")
DEFAULT_ACME_HTTP = "0.0.0.0:80"
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
    acme_agree_tos: bool | None = None
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
    public_ip: str | None = None  # "" = unknown
    delegation: str | None = None  # init_delegation.DELEGATIONS; None = direct
    delegated_host: str | None = None  # this machine's name with well-known or srv
    acme_directory: str | None = None  # None: Let's Encrypt production
    acme_ca_file: Path | None = None  # a private CA's, for its directory's HTTPS
    acme_staging: bool = False
    acme_challenge: str | None = None
    listen_acme_http: str | None = None


def answers_from_flags(flags: InitAnswers, config_path: Path, detected_ip: str) -> InitAnswers:
    """--non-interactive: defaults for what the flags left out; the server name is required.
    `detected_ip`: the public IP to write when --public-ip is not given ("" = unknown)."""
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
    if flags.delegation in ("well-known", "srv") and not flags.delegated_host:
        fail(
            f"--delegation {flags.delegation} needs --delegated-host (this machine's name,"
            f" e.g. matrix.{flags.server_name})"
        )
    if flags.tls_mode == "acme" and not flags.acme_agree_tos:
        fail(
            "--tls-mode acme needs --acme-agree-tos: agreeing to the certificate authority's terms"
            f" of service (Let's Encrypt's: {LETS_ENCRYPT_TERMS})"
        )
    if flags.tls_mode == "files":
        for key, path in (("cert_path", flags.tls_cert), ("key_path", flags.tls_key)):
            if path is None:
                continue  # config_from_answers names the missing key
            try:
                check_existing_file("tls", key)(str(path))
            except ConfigError as e:
                fail(str(e))
    public_ip = flags.public_ip if flags.public_ip is not None else detected_ip
    return fill_defaults(dataclasses.replace(flags, public_ip=public_ip), config_path)


def fill_defaults(answers: InitAnswers, config_path: Path) -> InitAnswers:
    """Every answer not given, from the ones that are (the same rules for both modes)."""
    tls_mode = answers.tls_mode or "proxy"
    delegation = answers.delegation or "direct"
    # Without the question answered, a certificate mode serves both listeners (as before).
    behind_proxy = tls_mode == "proxy" or bool(answers.client_behind_proxy)
    listeners = layout(delegation, tls_mode, behind_proxy)
    client = answers.listen_client if answers.listen_client is not None else listeners.client
    federation = (
        answers.listen_federation if answers.listen_federation is not None else listeners.federation
    )
    # No federation listener: federation goes through the client listener, with its TLS.
    federation_tls = listeners.federation_tls if federation else None
    return dataclasses.replace(
        answers,
        delegation=delegation,
        public_ip=answers.public_ip or "",
        public_baseurl=answers.public_baseurl
        or default_baseurl(delegation, answers.server_name or "", answers.delegated_host),
        data_dir=answers.data_dir or config_path.parent / "data",
        tls_mode=tls_mode,
        acme_email=answers.acme_email or "",
        registration=answers.registration or "closed",
        listen_client=client,
        listen_federation=federation,
        client_behind_proxy=behind_proxy,
        listen_client_tls=listeners.client_tls,
        listen_federation_tls=federation_tls,
        **(_acme_defaults(answers) if tls_mode == "acme" else {}),
    )


def default_baseurl(delegation: str, server_name: str, host: str | None) -> str:
    # Delegated: clients reach this machine by its own name, as other servers do.
    if delegation != "direct" and host:
        return f"https://{host}/"
    return f"https://{server_name}/"


def _acme_defaults(answers: InitAnswers) -> dict[str, Any]:
    directory = answers.acme_directory or ""
    if answers.acme_staging:
        directory = STAGING_DIRECTORY
    challenge, acme_http = answers.acme_challenge, answers.listen_acme_http
    if challenge is None:
        # As the wizard does: HTTP-01 when this machine can listen on port 80.
        address = acme_http if acme_http is not None else DEFAULT_ACME_HTTP
        state = probe_port(address) if address else PortState.IN_USE
        challenge, probed_http = acme_challenge((address, state))
        acme_http = acme_http if acme_http is not None else probed_http
    elif acme_http is None:
        acme_http = DEFAULT_ACME_HTTP if challenge == "http-01" else ""
    return {"acme_directory": directory, "acme_challenge": challenge, "listen_acme_http": acme_http}


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
    acme_http: dict[str, str] = {}
    if answers.tls_mode == "acme":
        assert answers.server_name is not None and answers.delegation is not None
        names = acme_names(answers.delegation, answers.server_name, answers.delegated_host)
        tls.update(
            acme_agree_tos=bool(answers.acme_agree_tos),
            acme_names=list(names),
            acme_challenge=answers.acme_challenge,
        )
        if answers.acme_directory:
            tls["acme_directory"] = answers.acme_directory
        if answers.acme_ca_file is not None:
            tls["acme_ca_file"] = str(Path.cwd() / answers.acme_ca_file)
        acme_http["acme_http"] = answers.listen_acme_http or ""
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
            "public_ip": answers.public_ip or "",
        },
        "listen": {
            "client": answers.listen_client,
            "federation": answers.listen_federation,
            **_tls_switches(answers),
            **acme_http,
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
