"""`dendrite-lite doctor [SERVER_NAME]`: how other servers and clients see a server name, and
what to fix. Without SERVER_NAME it checks the server configured in --config, and then also
what only that server can check (a request signed with its key, its ports, outbox, TURN and
LiveKit for calls, certificate files, its config, file permissions and disk space).

A thin shell over delegation/doctor: it runs the checks, then prints the findings grouped by
area (click drops the colours when stdout is not a terminal) or, with --json, the list of
findings for scripts. Exit 1 when a check FAILs; warnings alone exit 0. A check of the
configured server also leaves its summary in the data directory, for the TUI's dashboard.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Annotated

import typer

from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    fail,
    load_config_or_exit,
)
from dendrite_lite.delegation.doctor import (
    AREAS,
    DoctorNetwork,
    Finding,
    LocalSetup,
    Status,
    diagnose,
    worst,
)
from dendrite_lite.delegation.doctor_last_run import save_last_run

__all__ = ["doctor"]

EXIT_FAILED = 1
_COLOURS = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}


def doctor(
    server_name: Annotated[
        str | None,
        typer.Argument(help="The server to check. Default: server.server_name of the config."),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the findings as a JSON list, for scripts.")
    ] = False,
    ca_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--ca-file", exists=True, dir_okay=False,
            help="Also trust this CA (PEM), for a private CA or a self-signed test certificate."
            " There is no way to skip certificate checks: peers verify your certificate, so"
            " the doctor does too.",
        ),
    ] = None,
    dns_server: Annotated[
        str | None,
        typer.Option(
            "--dns-server", hidden=True,
            help="Ask this DNS server (IP:PORT) for SRV, CNAME and A/AAAA records instead of the"
            " system's: for tests against a local DNS server.",
        ),
    ] = None,
) -> None:
    """Check a server name the way other servers resolve and reach it: server name, well-known
    delegation, SRV and A/AAAA records, TLS certificate per address, signing keys, the
    federation version endpoint and the clock; then /.well-known/matrix/client as clients read
    it. Without SERVER_NAME, also what only the configured server can check: a request signed
    with its key to itself through its public address (reverse proxies that drop
    /_matrix/federation or the Authorization header), ports 8448/443/80 on server.public_ip,
    the destinations its outbox is failing to reach, its TURN servers (a relay allocation with
    the credentials it hands out) and lk-jwt-service for calls, its certificate and ACME
    renewal, and the local setup: public_baseurl, open registration, permissions of the
    signing key and database, free disk space. Every problem comes with its fix.
    """
    local = None
    if server_name is None:
        # Only the configured server's files and config are ours to inspect: a SERVER_NAME
        # given on the command line may be anyone's.
        local = LocalSetup(load_config_or_exit(config))
        server_name = local.config.server.server_name
    try:
        network = DoctorNetwork.default([str(p) for p in ca_file or ()], _address(dns_server))
    except ssl.SSLError as e:
        fail(f"--ca-file: cannot load the certificates: {e}", hint="Give a PEM file (-----BEGIN CERTIFICATE-----).")
    findings = asyncio.run(diagnose(server_name, network, local))
    if local is not None:
        _save_for_the_dashboard(local, server_name, findings)
    if json_output:
        typer.echo(json.dumps([f.to_json() for f in findings], indent=2))
    else:
        _print_report(server_name, findings, local)
    if worst(findings) is Status.FAIL:
        raise typer.Exit(EXIT_FAILED)


def _save_for_the_dashboard(local: LocalSetup, server_name: str, findings: list[Finding]) -> None:
    try:
        save_last_run(local.config.server.data_dir, server_name, findings, time.time())
    except OSError as e:  # e.g. run as another user than the server's: the report still stands
        typer.echo(f"note: the dashboard will not show this result ({e})", err=True)


def _address(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not host:
        fail(f"--dns-server: {value!r} is not IP:PORT", hint="e.g. --dns-server 127.0.0.1:5353")
    return host.strip("[]"), int(port)


def _print_report(server_name: str, findings: list[Finding], local: LocalSetup | None) -> None:
    and_local = ""
    if local is not None:
        source = local.config.source_path
        and_local = ", and its local setup" + (f" ({source})" if source is not None else "")
    typer.echo(f"Checking {server_name} as other Matrix servers and clients see it{and_local}.")
    for area in AREAS:
        in_area = [f for f in findings if f.area == area]
        if not in_area:
            continue
        typer.echo("")
        typer.secho(area, bold=True)
        for f in in_area:
            label = typer.style(f"{f.status.value:<4}", fg=_COLOURS[f.status], bold=True)
            typer.echo(f"  {label}  {f.why}")
            if f.fix and f.status is not Status.OK:
                fix = f.fix.replace("\n", "\n          ")
                typer.echo(f"        fix: {fix}")
    counts = {s: sum(1 for f in findings if f.status is s) for s in Status}
    typer.echo("")
    summary = ", ".join(f"{counts[s]} {s.value}" for s in (Status.FAIL, Status.WARN, Status.OK))
    typer.secho(summary, fg=_COLOURS[worst(findings)], bold=True)
