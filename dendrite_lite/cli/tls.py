"""`dendrite-lite tls status|renew`: the ACME certificate's state, and renewal on demand."""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(help="ACME certificates (tls.mode = \"acme\"): status and renewal.",
                  no_args_is_help=True)
