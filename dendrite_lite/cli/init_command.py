"""`dendrite-lite init`: the command. The answers come from init_questions (the interactive
wizard, with its live checks) or init_wizard.answers_from_flags (--non-interactive); this
module checks the flags, writes the files and prints the next steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite.cli.common import DEFAULT_CONFIG, ConfigOption, fail
from dendrite_lite.cli.init_delegation import DELEGATIONS
from dendrite_lite.cli.init_next_steps import next_steps
from dendrite_lite.cli.init_questions import WizardProbes, ask_answers
from dendrite_lite.cli.init_wizard import (
    ACME_CHALLENGES,
    REGISTRATION_MODES,
    TLS_MODES,
    InitAnswers,
    answers_from_flags,
    check_localpart,
    config_from_answers,
    read_password_file,
    write_install,
)
from dendrite_lite.config import Config, ConfigError, check_option, split_address
from dendrite_lite.delegation.discovery import is_ip_literal
from dendrite_lite.errors import MatrixError

__all__ = ["init"]


def init(
    config: ConfigOption = DEFAULT_CONFIG,
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="Ask nothing: take every answer from flags.")
    ] = False,
    server_name: Annotated[
        str | None,
        typer.Option(help="The domain in user IDs (@alice:example.org). Cannot change later."),
    ] = None,
    public_baseurl: Annotated[
        str | None,
        # "\\<": help is markdown (rich_markup_mode), where a bare <server-name> is an HTML tag
        # and vanishes from --help.
        typer.Option(help="The https:// URL clients use. Default: https://\\<server-name>/."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the database, media and key live. Default: ./data by the config."),
    ] = None,
    tls_mode: Annotated[
        str | None,
        typer.Option(
            help="proxy: a reverse proxy does HTTPS (default); acme: automatic Let's Encrypt;"
            " files: your own certificate (--tls-cert, --tls-key).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate chain, with --tls-mode files.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="PEM private key, with --tls-mode files.")
    ] = None,
    acme_email: Annotated[
        str | None, typer.Option(help="Email for certificate expiry warnings (acme).")
    ] = None,
    acme_agree_tos: Annotated[
        bool,
        typer.Option(
            "--acme-agree-tos",
            "--agree-tos",
            help="With --tls-mode acme: you agree to the certificate authority's terms of service"
            " (Let's Encrypt's: https://letsencrypt.org/repository/).",
        ),
    ] = False,
    registration: Annotated[
        str | None,
        typer.Option(
            help="closed: only admins create accounts (default); token: sign-up with a token"
            " you hand out; open: anyone may sign up.",
        ),
    ] = None,
    listen_client: Annotated[
        str | None,
        typer.Option(help='Client API address "host:port". Default: 127.0.0.1:8008 (proxy mode).'),
    ] = None,
    listen_federation: Annotated[
        str | None,
        typer.Option(help='Federation address "host:port"; "" for none. Default: port 8448.'),
    ] = None,
    client_behind_proxy: Annotated[
        bool | None,
        typer.Option(
            "--client-behind-proxy/--client-direct",
            help="With --tls-mode acme or files: your reverse proxy serves the client API, so it"
            " listens in plain HTTP on 127.0.0.1:8008 and only federation (0.0.0.0:8448) serves"
            " the certificate. --client-direct (default): both serve it.",
        ),
    ] = None,
    admin_user: Annotated[
        str | None, typer.Option(help="Create this admin account (the name before the ':').")
    ] = None,
    admin_password_file: Annotated[
        Path | None,
        typer.Option(help="File holding the admin's password ('-' reads it from stdin)."),
    ] = None,
    public_ip: Annotated[
        str | None,
        typer.Option(help="This machine's public IP (server.public_ip). Default: detected."),
    ] = None,
    no_detect: Annotated[
        bool,
        typer.Option(
            "--no-detect",
            help="Do not detect the public IP (the interactive wizard otherwise asks an HTTPS"
            " service when this machine's own address is private).",
        ),
    ] = False,
    delegation: Annotated[
        str | None,
        typer.Option(
            help="How other servers find this one. direct: they connect to \\<server-name>:8448;"
            " well-known: the web server of \\<server-name> publishes a file naming"
            " --delegated-host:443; srv: a DNS SRV record names --delegated-host:8448.",
        ),
    ] = None,
    delegated_host: Annotated[
        str | None,
        typer.Option(help="This machine's name with --delegation well-known or srv (matrix.example.org)."),
    ] = None,
    acme_staging: Annotated[
        bool,
        typer.Option(
            "--acme-staging",
            help="Use Let's Encrypt's staging CA (untrusted test certificates, no rate limits).",
        ),
    ] = False,
    acme_directory: Annotated[
        str | None, typer.Option(help="Another ACME CA's directory URL (acme).")
    ] = None,
    acme_ca_file: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False,
            help="A CA certificate (PEM) to trust for --acme-directory's HTTPS (a private CA).",
        ),
    ] = None,
    acme_challenge: Annotated[
        str | None,
        typer.Option(
            help="http-01 (port 80) or tls-alpn-01 (port 443). Default: http-01 when port 80 is"
            " free here.",
        ),
    ] = None,
    listen_acme_http: Annotated[
        str | None,
        typer.Option(help='The ACME HTTP-01 listener "host:port" (acme). Default: 0.0.0.0:80.'),
    ] = None,
    dns_server: Annotated[
        str | None,
        # Hidden: for tests (a dnsmasq on loopback) and for checking against one name server.
        typer.Option(hidden=True, help='Ask this name server ("ip" or "ip:port") in the checks.'),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing config file and signing key.")
    ] = False,
) -> None:
    """Set up a new server: write the config file, a signing key and the data directory.

    Detects this machine's public IP, asks for the server name and how other servers find it
    (directly on port 8448, through a .well-known file, or an SRV record), checks the DNS as
    you answer, suggests automatic certificates (acme) when the names resolve here and the
    ports are free, then asks who may register and for the first admin account. Ends with the
    exact DNS records and files to publish. With --non-interactive every answer comes from
    flags and nothing is looked up on the network.
    """
    if config.exists() and not force:
        fail(f"{config} already exists; not overwriting it", hint="Use --force to replace it.")
    for value, flag, choices in (
        (tls_mode, "--tls-mode", TLS_MODES),
        (registration, "--registration", REGISTRATION_MODES),
        (delegation, "--delegation", DELEGATIONS),
        (acme_challenge, "--acme-challenge", ACME_CHALLENGES),
    ):
        if value is not None and value not in choices:
            fail(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    _check_flags(
        ("server", "public_ip", public_ip), ("listen", "client", listen_client),
        ("listen", "federation", listen_federation), ("listen", "acme_http", listen_acme_http),
        ("tls", "acme_directory", acme_directory),
        ("tls", "acme_names", None if delegated_host is None else [delegated_host]),
    )
    if acme_staging and acme_directory is not None:
        fail("--acme-staging and --acme-directory both name the CA; give one")
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
        acme_agree_tos=acme_agree_tos or None,
        registration=registration,
        listen_client=listen_client,
        listen_federation=listen_federation,
        client_behind_proxy=client_behind_proxy,
        admin_user=admin_user,
        admin_password=read_password_file(admin_password_file) if admin_password_file else None,
        public_ip=public_ip,
        delegation=delegation,
        delegated_host=delegated_host,
        acme_directory=acme_directory,
        acme_ca_file=acme_ca_file,
        acme_staging=acme_staging,
        acme_challenge=acme_challenge,
        listen_acme_http=listen_acme_http,
    )
    # The HTTPS lookup of the public IP only where the user sees and can correct the answer.
    probes = WizardProbes.default(
        _dns_server(dns_server), detect=not no_detect and public_ip is None,
        lookup=not non_interactive,
    )
    if non_interactive:
        answers = answers_from_flags(flags, config, probes.detect_ip().address)
    else:
        answers = ask_answers(flags, config, probes)
    try:
        cfg = config_from_answers(answers, config)
    except ConfigError as e:
        fail(str(e))
    key = write_install(cfg, config, force=force)
    typer.echo(f"\nWrote {config} and the signing key {key.key_id} ({cfg.signing_key_path}).")
    if answers.admin_user is not None and answers.admin_password is not None:
        _create_first_admin(cfg, answers.admin_user, answers.admin_password, config)
    typer.echo(next_steps(answers, cfg, config))


def _check_flags(*options: tuple[str, str, object]) -> None:
    # Checked before any question: a mistyped flag must not cost the user the whole wizard, and
    # the probes need valid addresses. The loader's own checks, so the messages are its.
    for section, key, value in options:
        if value is not None:
            try:
                check_option(section, key, value)
            except ConfigError as e:
                fail(str(e))


def _dns_server(value: str | None) -> tuple[str, int] | None:
    # "IP:PORT" as `doctor --dns-server` takes it; the listener syntax's parser checks it.
    if value is None:
        return None
    try:
        host, port = split_address(value, "--dns-server")
    except ConfigError as e:
        fail(str(e))
    if not is_ip_literal(host):
        fail(f"--dns-server: {value!r}: give the name server's IP address, e.g. 127.0.0.1:53")
    return host, port


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


