"""What every CLI command shares: the --config option, loading it, and failing cleanly.

Self-hosters read these messages, so a known problem prints `error: <message>` to stderr and exits
2 (the usage-error code, like click's own) with no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from dendrite_lite.config import Config, ConfigError, load_config

__all__ = ["ConfigOption", "DEFAULT_CONFIG", "CONFIG_ENV", "fail", "load_config_or_exit"]

DEFAULT_CONFIG = Path("dendrite-lite.toml")
CONFIG_ENV = "DENDRITE_LITE_CONFIG"

# Annotated so every command spells the option, its env var and its help text the same way.
ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar=CONFIG_ENV,
        show_envvar=True,
        help="The config file. Default: $DENDRITE_LITE_CONFIG, else ./dendrite-lite.toml.",
    ),
]


def fail(message: str, *, code: int = 2, hint: str | None = None) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(hint, err=True)
    raise typer.Exit(code)


def load_config_or_exit(path: Path) -> Config:
    """Load the config for a command, or explain (exit 2) why that is not possible."""
    if not path.exists():
        fail(
            f"no config file at {path}",
            hint=(
                "Create one with `dendrite-lite init` (it asks a few questions), or point to an\n"
                f"existing one with --config PATH or ${CONFIG_ENV}."
            ),
        )
    try:
        return load_config(path)
    except ConfigError as e:
        hint = None if str(path) in str(e) else f"(in {path})"
        fail(str(e), hint=hint)
