"""`dendrite-lite registration-token create|list|revoke`: invitations for registration.mode = "token".

The same service as the Synapse-compatible admin API (users/registration_tokens.py), on the
database file directly, like create-account: no server running or needed, and safe while it runs
(WAL, and both sides wait for SQLite's write lock).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Optional

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
from dendrite_lite.errors import MatrixError
from dendrite_lite.users import registration_tokens as tokens_service
from dendrite_lite.users.sessions import now_ms

__all__ = ["app"]


app = typer.Typer(
    help="Registration tokens: who may sign up when registration.mode is \"token\".",
    no_args_is_help=True,
)



@app.command("create")
def create(
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token", help="The token itself (A-Z a-z 0-9 . _ ~ -, up to 64). Default: random."
        ),
    ] = None,
    uses: Annotated[
        Optional[int],
        typer.Option("--uses", min=0, help="How many accounts it may create. Default: unlimited."),
    ] = None,
    expires_in: Annotated[
        Optional[str],
        typer.Option(
            "--expires-in",
            metavar="DURATION",
            help="Valid for this long: a number and m, h, d or w (90m, 12h, 7d, 2w)."
            " Default: no expiry.",
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Create a registration token and print it (alone on stdout, for scripts)."""
    cfg = load_config_or_exit(config)
    now = now_ms()
    expiry_ts = now + parse_duration(expires_in, "--expires-in") * 1000 if expires_in is not None else None
    try:
        created = run_on_storage(cfg, lambda storage: tokens_service.create_token(
            storage, now=now, token=token, uses_allowed=uses, expiry_ts=expiry_ts
        ))
    except MatrixError as e:
        fail(f"cannot create the token: {e.error}")
    typer.echo(created.token)
    typer.echo(
        f"Created a registration token ({_uses(created)}, {_expiry(created.expiry_ts)}).",
        err=True,
    )
    if cfg.registration.mode != "token":
        # A token is useless until the mode says so: say it now, not when nobody can sign up.
        typer.echo(
            f'Note: registration.mode is "{cfg.registration.mode}", so /register does not ask'
            ' for tokens. Set registration.mode = "token" and restart to use it.',
            err=True,
        )


@app.command("list")
def list_tokens(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """List the registration tokens: uses so far, expiry, and whether each still works."""
    cfg = load_config_or_exit(config)
    found = run_on_storage(cfg, tokens_service.list_tokens)
    if not found:
        typer.echo("No registration tokens. Create one with `dendrite-lite registration-token create`.")
        return
    now = now_ms()
    rows = [
        (t.token, _uses(t), _expiry(t.expiry_ts), "valid" if t.is_valid(now) else "used up/expired")
        for t in found
    ]
    header = ("TOKEN", "USES", "EXPIRES", "STATUS")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


@app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="The token to delete; nobody can sign up with it.")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Delete a registration token (accounts already created with it stay)."""
    cfg = load_config_or_exit(config)
    if not run_on_storage(cfg, lambda storage: tokens_service.delete_token(storage, token)):
        fail(f"there is no registration token {token!r}", code=EXIT_REFUSED)
    typer.echo(f"Revoked the registration token {token}.")


def _uses(token: tokens_service.RegistrationToken) -> str:
    allowed = "unlimited" if token.uses_allowed is None else str(token.uses_allowed)
    return f"{token.completed}/{allowed} used"


def _expiry(expiry_ts: int | None) -> str:
    if expiry_ts is None:
        return "never expires"
    when = datetime.datetime.fromtimestamp(expiry_ts / 1000, tz=datetime.timezone.utc)
    return f"expires {when:%Y-%m-%d %H:%M} UTC"
