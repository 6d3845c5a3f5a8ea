"""`dendrite-lite tls status|renew`: the ACME certificate's state, and renewal on demand.

`renew` never renews next to a running server: the server holds flock() on
<acme_dir>/renewer.lock, so `renew` then asks it (the renew-request file, tls/state.py) and waits
for state.json to record the attempt. Only when no process holds the lock does it renew by
itself, which is how a certificate is got before the first start or while the server is down.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    fail,
    load_config_or_exit,
)
from dendrite_lite.config import Config
from dendrite_lite.tls.state import (
    RENEW_REQUEST_FILE,
    RENEWER_LOCK_FILE,
    AcmeState,
    load_state,
    write_private,
)
from dendrite_lite.tls.status import EXPIRY_WARNING_DAYS, TlsStatus, tls_status

__all__ = ["app"]

app = typer.Typer(help="ACME certificates (tls.mode = \"acme\"): status and renewal.",
                  no_args_is_help=True)

EXIT_NOT_OK = 1
DEFAULT_WAIT_S = 180.0
# How often `renew` looks at state.json while the server works; an order takes seconds.
_POLL_S = 0.2


def _acme_config_or_exit(path: Path) -> Config:
    config = load_config_or_exit(path)
    if config.tls.mode != "acme":
        fail(
            f'tls.mode is "{config.tls.mode}", not "acme": dendrite-lite gets no certificate '
            "itself, so there is nothing to show or renew",
            code=EXIT_NOT_OK,
            hint='Set tls.mode = "acme" (with tls.acme_email and tls.acme_agree_tos) to have one.',
        )
    return config


@app.command()
def status(
    config: ConfigOption = DEFAULT_CONFIG,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the status as one JSON object, for scripts.")
    ] = False,
) -> None:
    """The certificate's names, issuer and expiry, the next renewal, and the last attempt.

    Exit 0 when a valid certificate exists that does not expire within 7 days; 1 otherwise
    (no certificate yet, expired or expiring soon, or tls.mode is not "acme").
    """
    cfg = _acme_config_or_exit(config)
    st = tls_status(cfg, time.time())
    if json_output:
        typer.echo(json.dumps(_status_json(st), indent=2, sort_keys=True))
    else:
        for line in _status_lines(st):
            typer.echo(line)
    if not st.ok:
        raise typer.Exit(EXIT_NOT_OK)


def _status_json(st: TlsStatus) -> dict[str, Any]:
    s, cert = st.state, st.certificate
    return {
        "ok": st.ok,
        "certificate": cert is not None,
        "certificate_error": st.certificate_error,
        "names": list(cert.names) if cert else [],
        "wanted_names": list(st.wanted_names),
        "issuer": cert.issuer if cert else "",
        "not_before": cert.not_before if cert else None,
        "not_after": cert.not_after if cert else None,
        "days_left": st.days_left,
        "next_renewal": st.next_renewal,
        "challenge": s.challenge,
        "directory": s.directory,
        "last_attempt": s.last_attempt,
        "last_success": s.last_success,
        "last_error": s.last_error,
        "failures": s.failures,
        "next_attempt": s.next_attempt if s.failures else None,
    }


def _status_lines(st: TlsStatus) -> list[str]:
    s, cert = st.state, st.certificate
    if cert is None:
        why = st.certificate_error or s.last_error or "the server has not tried yet"
        lines = [f"no certificate yet: {why}"]
    else:
        lines = [
            f"names:        {', '.join(cert.names)}",
            f"issuer:       {cert.issuer}",
            f"expires:      {_when(cert.not_after, st.now)}",
        ]
        if st.names_pending:
            lines.append(f"config wants: {', '.join(st.wanted_names)} (the next attempt gets them)")
        if st.next_renewal is not None:
            lines.append(f"next renewal: {_when(st.next_renewal, st.now)}")
        if s.challenge:
            lines.append(f"challenge:    {s.challenge}")
    if s.last_success is not None:
        lines.append(f"last success: {_when(s.last_success, st.now)}")
    if cert is not None or (st.certificate_error and s.last_error):
        lines.append(f"last error:   {s.last_error or 'none'}")
    if s.failures:
        attempt = f"; next attempt {_when(s.next_attempt, st.now)}" if s.next_attempt else ""
        lines.append(f"failures:     {s.failures} in a row{attempt}")
    if cert is not None and not st.ok:
        lines.append(_not_ok_reason(st))
    return lines


def _not_ok_reason(st: TlsStatus) -> str:
    assert st.certificate is not None and st.days_left is not None
    if st.certificate.not_before > st.now:
        return "NOT VALID YET: check this machine's clock"
    if st.days_left <= 0:
        return "EXPIRED: peers and clients refuse it; see the last error above"
    return f"EXPIRES WITHIN {EXPIRY_WARNING_DAYS} DAYS: renewal keeps failing; see the last error above"


def _when(ts: float, now: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{moment} ({_relative(ts - now)})"


def _relative(delta_s: float) -> str:
    span = abs(delta_s)
    if span >= 2 * 86400:
        amount = f"{span / 86400:.0f} days"
    elif span >= 2 * 3600:
        amount = f"{span / 3600:.0f} h"
    else:
        amount = f"{max(span / 60, 1):.0f} min"
    return f"in {amount}" if delta_s >= 0 else f"{amount} ago"


@app.command()
def renew(
    config: ConfigOption = DEFAULT_CONFIG,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, metavar="SECONDS",
            help="How long to wait for a running server to finish the renewal.",
        ),
    ] = DEFAULT_WAIT_S,
) -> None:
    """Get a new certificate now, ignoring the renewal schedule and any back-off.

    With the server running, it asks the server to renew and waits for the result; otherwise it
    renews in this process, answering the challenge itself (HTTP-01 on listen.acme_http,
    TLS-ALPN-01 on the TLS listener's address). Exit 0 when a new certificate was issued, 1 when
    the attempt failed or the server did not answer in time.
    """
    cfg = _acme_config_or_exit(config)
    if _renewer_running(cfg.acme_dir):
        state = _ask_running_server(cfg.acme_dir, wait)
    else:
        state = _renew_here(cfg)
    _report(state)


def _renewer_running(acme_dir: Path) -> bool:
    """Whether another process holds the renewer lock (tls/state.py). The probe releases it at
    once: renewing here takes the lock for itself (tls.manager.renew_standalone)."""
    lock_path = acme_dir / RENEWER_LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # never created: no server has renewed from this data directory yet
    except OSError as e:
        fail(f"cannot open {lock_path}: {e.strerror}", code=EXIT_NOT_OK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor releases a lock it got
    return False


def _ask_running_server(acme_dir: Path, wait_s: float) -> AcmeState:
    request = acme_dir / RENEW_REQUEST_FILE
    seen = load_state(acme_dir).last_attempt
    write_private(request, f"{time.time()}\n".encode())
    typer.echo(f"asked the running server to renew (it holds {acme_dir / RENEWER_LOCK_FILE}); "
               f"waiting up to {wait_s:g} s")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(_POLL_S)
        state = load_state(acme_dir)
        # The renewer removes the request when it starts our attempt: an attempt recorded while
        # the request is still there was already under way, and is not the answer.
        if request.exists():
            seen = state.last_attempt
        elif state.last_attempt != seen:
            return state
    fail(
        f"the server did not record a renewal within {wait_s:g} s",
        code=EXIT_NOT_OK,
        hint=(
            f"The request stays in {request}: the server renews when it gets to it. Its log says"
            " what it is doing; `dendrite-lite tls status` shows the outcome."
            if request.exists() else
            "It started the attempt but has not finished it; `dendrite-lite tls status` shows"
            " the outcome once it does."
        ),
    )


def _renew_here(config: Config) -> AcmeState:
    # Imported here: the issuer pulls in acme, requests and the HTTP listener, which `status`
    # and the request path do not need.
    from dendrite_lite.tls.manager import RenewerBusy, renew_standalone

    typer.echo("no running server holds the renewer lock: renewing in this process")
    try:
        return asyncio.run(renew_standalone(config))
    except RenewerBusy as e:  # a server started meanwhile, or the challenge port is taken
        fail(str(e), code=EXIT_NOT_OK)


def _report(state: AcmeState) -> None:
    if state.last_error or state.last_success != state.last_attempt:
        fail(f"renewal failed: {state.last_error or 'no reason recorded'}", code=EXIT_NOT_OK)
    expiry = ""
    if state.not_after is not None:
        expiry = f", valid until {_when(state.not_after, time.time())}"
    typer.echo(f"renewed: a new certificate for {', '.join(state.names)}{expiry}")
