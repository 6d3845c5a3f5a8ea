"""What every CLI command shares: the --config option, loading it, and failing cleanly.

Self-hosters read these messages, so a known problem prints `error: <message>` to stderr and exits
2 (the usage-error code, like click's own) with no traceback.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from dendrite_lite.config import Config, ConfigError, load_config
from dendrite_lite.storage import MigrationError, SchemaTooNew, Storage

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "EXIT_REFUSED",
    "ConfigOption",
    "fail",
    "load_config_or_exit",
    "parse_duration",
    "run_on_storage",
]

EXIT_REFUSED = 1  # understood, but cannot be done (no such thing, database too new)
_T = TypeVar("_T")
_DURATION_RE = re.compile(r"(\d+)([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

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


def run_on_storage(config: Config, action: Callable[[Storage], Awaitable[_T]]) -> _T:
    """Run `action` on the database file directly: no server needed, and safe while one runs
    (WAL, and both sides wait for SQLite's write lock)."""

    async def run() -> _T:
        # One reader is plenty for a one-shot command.
        storage = await Storage.open(
            config.database_path, synchronous=config.database.synchronous, readers=1
        )
        try:
            return await action(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except (SchemaTooNew, MigrationError) as e:
        fail(str(e), code=EXIT_REFUSED)


def parse_duration(text: str, option: str) -> int:
    """Seconds in "90m", "12h", "7d" or "2w"."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None or int(match[1]) == 0:
        fail(f"{option}: {text!r} is not a duration (a number and m, h, d or w: 12h, 7d)")
    return int(match[1]) * _UNIT_SECONDS[match[2]]
