"""The interactive `dendrite-lite init`: asks for every answer the flags did not give, and checks
the network as the user answers (public IP, what the names resolve to, delegation already
published, free ports), so the defaults it offers are the ones that will work here.

The checks go through `WizardProbes`, built by the command from its flags (--dns-server,
--no-detect), so tests replace each one with a loopback server or a fake.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from dendrite_lite.cli.common import fail
from dendrite_lite.cli.init_delegation import (
    DELEGATIONS,
    acme_names,
    choice_lines,
    layout,
    srv_certificate_rule,
)
from dendrite_lite.cli.init_tls import (
    LETS_ENCRYPT_TERMS,
    STAGING_DIRECTORY,
    acme_challenge,
    fetch_terms_url,
    tls_default,
)
from dendrite_lite.cli.init_wizard import (
    DEFAULT_ACME_HTTP,
    REGISTRATION_MODES,
    TLS_MODES,
    InitAnswers,
    check_existing_file,
    check_localpart,
    default_baseurl,
    fill_defaults,
)
from dendrite_lite.config import ConfigError, TlsConfig, check_option, split_host
from dendrite_lite.delegation.doctor import DoctorNetwork
from dendrite_lite.delegation.doctor.network import Address
from dendrite_lite.delegation.local_ports import PRIVILEGE_HINT, PortState, probe_port
from dendrite_lite.delegation.name_checks import (
    AddressCheck,
    DelegationFound,
    NameChecker,
)
from dendrite_lite.delegation.public_ip import DetectedIp, detect_public_ip

__all__ = ["WizardProbes", "ask_answers"]


@dataclass(frozen=True)
class WizardProbes:
    names: NameChecker
    detect_ip: Callable[[], DetectedIp]
    probe_port: Callable[[str], PortState]
    terms_url: Callable[[str, str | None], tuple[str | None, str | None]]  # (directory, CA file)

    @classmethod
    def default(cls, dns_server: Address | None, *, detect: bool, lookup: bool) -> WizardProbes:
        """`dns_server`: ask this DNS server instead of the system's; `detect`: look for the
        public IP at all; `lookup`: ask an HTTPS service when the local address is private."""

        def detect_ip() -> DetectedIp:
            if not detect:
                return DetectedIp("", "not detected (--no-detect)")
            return detect_public_ip(lookup=lookup)

        names = NameChecker(DoctorNetwork.default(dns_server=dns_server))
        return cls(names, detect_ip, probe_port, fetch_terms_url)


def say(line: str) -> None:
    """A finding of a live check, indented under the question it follows."""
    typer.echo(f"  check: {line}")


def ask_answers(flags: InitAnswers, config_path: Path, probes: WizardProbes) -> InitAnswers:
    typer.echo(
        "This sets up a new dendrite-lite server. Press Enter to take the [default].\n"
        f"It writes {config_path}, a signing key and the data directory.\n"
    )
    public_ip = flags.public_ip if flags.public_ip is not None else _ask_public_ip(probes)
    server_name = flags.server_name or _ask(
        "Server name: the domain in user IDs like @alice:example.org (cannot change later)",
        None,
        _check("server", "server_name"),
    )
    name_check = _address_check(probes, split_host(server_name), public_ip)
    found = asyncio.run(probes.names.delegation(server_name))
    say(found.summary)
    delegation, host, host_check = _ask_delegation(
        flags, probes, server_name, public_ip, name_check, found
    )
    public_baseurl = flags.public_baseurl or _ask(
        "Public URL where clients reach this server",
        default_baseurl(delegation, server_name, host),
        _check("server", "public_baseurl"),
    )
    data_dir = flags.data_dir or Path(
        _ask(
            "Data directory (database, media, signing key; back it up)",
            str(config_path.parent / "data"),
            _check("server", "data_dir"),
        )
    )
    names = acme_names(delegation, server_name, host) or (split_host(server_name),)
    checks = {c.host: c for c in (name_check, host_check) if c is not None}
    cert_checks = [checks.get(n) or _address_check(probes, n, public_ip) for n in names]
    asked = dataclasses.replace(
        flags, public_ip=public_ip, server_name=server_name, delegation=delegation,
        delegated_host=host, public_baseurl=public_baseurl, data_dir=data_dir,
    )
    asked = _ask_tls(asked, probes, cert_checks)
    client_behind_proxy = flags.client_behind_proxy
    if asked.tls_mode != "proxy" and delegation != "well-known" and client_behind_proxy is None:
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
        asked,
        client_behind_proxy=client_behind_proxy,
        registration=registration,
        admin_user=admin_user,
        admin_password=admin_password,
    )
    return fill_defaults(asked, config_path)


def _ask_public_ip(probes: WizardProbes) -> str:
    detected = probes.detect_ip()
    if detected.address:
        typer.echo(f"This machine's public IP: {detected.address} ({detected.source}).")
    else:
        typer.echo(f"This machine's public IP: {detected.source}.")
    if detected.behind_nat:
        typer.echo(
            "It is behind NAT: forward TCP ports 443, 8448 and 80 from the router to this machine."
        )
    return _ask(
        "Public IP address of this machine (other servers connect to it; empty if unknown)",
        detected.address,
        _check("server", "public_ip"),
    )


def _address_check(probes: WizardProbes, host: str, public_ip: str) -> AddressCheck:
    check = asyncio.run(probes.names.addresses(host, public_ip))
    say(check.summary())
    return check


def _ask_delegation(
    flags: InitAnswers,
    probes: WizardProbes,
    server_name: str,
    public_ip: str,
    name_check: AddressCheck,
    found: DelegationFound,
) -> tuple[str, str | None, AddressCheck | None]:
    name = split_host(server_name)
    found_host = found.target.rsplit(":", 1)[0] if found.kind != "none" else None
    host = flags.delegated_host or found_host
    delegation = flags.delegation
    if delegation is None:
        typer.echo("How do other Matrix servers find this one?")
        for line in choice_lines(server_name, host):
            typer.echo(f"  {line}")
        # What is published already wins; else direct when the name points here.
        default = found.kind if found.kind != "none" else (
            "direct" if name_check.points_here else "well-known"
        )
        delegation = _choose("Delegation", DELEGATIONS, None, None, default=default)
    if delegation == "direct":
        return delegation, None, None
    host = flags.delegated_host or _ask(
        "This machine's host name (its A/AAAA record points here)",
        host or f"matrix.{name}",
        # The certificate's rule for a name (no port, no IP): it may go on one.
        lambda value: check_option("tls", "acme_names", [value]),
    )
    host_check = _address_check(probes, host, public_ip)
    say(_published_line(delegation, name, host, found))
    if delegation == "srv" and not name_check.points_here:
        typer.echo(srv_certificate_rule(server_name, host))
        # A choice made by flag stands; one made here may still change.
        if flags.delegation is None and typer.confirm("Use well-known instead?", default=True):
            delegation = "well-known"
            say(_published_line(delegation, name, host, found))
    return delegation, host, host_check


def _published_line(delegation: str, name: str, host: str, found: DelegationFound) -> str:
    want = f"{host}:443" if delegation == "well-known" else f"{host}:8448"
    what = ".well-known file" if delegation == "well-known" else "SRV record"
    if found.kind == delegation:
        if found.target == want:
            return f"the {what} already names {want}."
        return f"the {what} names {found.target}, not {want}: change it (shown at the end)."
    if found.kind == "well-known":
        return (
            f"https://{name}/.well-known/matrix/server names {found.target} and comes before any"
            " SRV record: remove it."
        )
    return f"no {what} is published yet: the exact one is shown at the end."


def _ask_tls(asked: InitAnswers, probes: WizardProbes, cert_checks: list[AddressCheck]) -> InitAnswers:
    assert asked.delegation is not None and asked.public_ip is not None
    https = asked.listen_client or layout(asked.delegation, "acme", False).client
    http = asked.listen_acme_http if asked.listen_acme_http is not None else DEFAULT_ACME_HTTP
    ports = {a: probes.probe_port(a) if a else PortState.IN_USE for a in (https, http)}
    say("; ".join(f"{a} {state.value}" for a, state in ports.items() if a) + ".")
    if any(s is PortState.NEEDS_PRIVILEGE for s in ports.values()):
        say(f"{PRIVILEGE_HINT}.")
    while True:
        tls_mode = asked.tls_mode
        if tls_mode is None:
            suggested = tls_default(cert_checks, (https, ports[https]), asked.public_ip)
            typer.echo(f"Suggested HTTPS: {suggested.mode}, because {suggested.reason}.")
            tls_mode = _choose(
                "HTTPS: proxy = a reverse proxy (Caddy, nginx) does it; acme = automatic Let's\n"
                "Encrypt certificates (this machine answers the CA's checks); files = your own"
                " certificate",
                TLS_MODES, "tls", "mode", default=suggested.mode,
            )
        answered = dataclasses.replace(asked, tls_mode=tls_mode)
        if tls_mode == "files":
            return dataclasses.replace(
                answered,
                tls_cert=_ask_file("Certificate chain file (PEM)", asked.tls_cert, "cert_path"),
                tls_key=_ask_file("Private key file (PEM)", asked.tls_key, "key_path"),
            )
        if tls_mode != "acme":
            return answered
        acme = _ask_acme(answered, probes, (http, ports[http]))
        if acme is not None:
            return acme
        if asked.tls_mode is not None:
            fail("--tls-mode acme needs the certificate authority's terms of service agreed")
        typer.echo("Without agreeing, the CA issues no certificate: choose proxy or files.")


def _ask_acme(
    answered: InitAnswers, probes: WizardProbes, http_port: tuple[str, PortState]
) -> InitAnswers | None:
    """The ACME answers, or None when the user does not agree to the CA's terms."""
    email = answered.acme_email
    if email is None:
        email = _ask(
            "Email for certificate expiry warnings (optional)", "", _check("tls", "acme_email")
        )
    directory = answered.acme_directory or (STAGING_DIRECTORY if answered.acme_staging else None)
    if directory is None and typer.confirm(
        "Use Let's Encrypt's staging CA first? Its certificates are trusted by nobody, but a\n"
        "setup mistake does not use up the real CA's rate limits (set tls.acme_directory later)",
        default=False,
    ):
        directory = STAGING_DIRECTORY
    agreed = answered.acme_agree_tos
    if not agreed:
        ca_file = str(answered.acme_ca_file) if answered.acme_ca_file else None
        url, error = probes.terms_url(directory or TlsConfig().acme_directory, ca_file)
        if url is None:
            say(f"{error}.")
            lets_encrypt = directory in (None, STAGING_DIRECTORY)
            url = LETS_ENCRYPT_TERMS if lets_encrypt else f"on the website of {directory}"
        typer.echo(f"The certificate authority's terms of service: {url}")
        agreed = typer.confirm("Do you agree to them? Certificates are issued only then", default=None)
        if not agreed:
            return None
    challenge, acme_http = answered.acme_challenge, answered.listen_acme_http
    if challenge is None:
        challenge, acme_http = acme_challenge(http_port)
        where = f"on {acme_http}" if acme_http else f"on the HTTPS port ({http_port[0]} is in use)"
        say(f"certificates will be checked by {challenge} {where}.")
    return dataclasses.replace(
        answered, acme_email=email, acme_directory=directory, acme_agree_tos=True,
        acme_challenge=challenge, listen_acme_http=acme_http,
    )


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


def _choose(
    question: str, choices: tuple[str, ...], section: str | None, key: str | None,
    *, default: str | None = None,
) -> str:
    # The loader's enum check (not a prompt type), so the message matches the config file's.
    def check(value: str) -> None:
        if section is not None and key is not None:
            check_option(section, key, value)
        elif value.lower() not in choices:
            raise ConfigError(f"{value!r} is not one of: {', '.join(choices)}")

    answer = _ask(f"{question}\n({'/'.join(choices)})", default or choices[0], check)
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
