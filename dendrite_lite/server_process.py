"""The server's own process image: `dendrite-lite run` checks the config, then execs this.

    python -m dendrite_lite.server_process CONFIG_PATH

Why a separate image: the CLI framework stays loaded for the life of the process otherwise, and
typer (0.29) brings pydantic and rich with it. Measured idle RSS of a fresh server on this
machine: 57.1 MB when served from inside the typer command, 47.3 MB from this module, 43.7 MB
with httpx's command-line module kept out as well (below). exec keeps the PID, so systemd and
anyone holding the PID still see the same process.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

__all__ = ["exec_server", "main"]


def exec_server(config_path: Path) -> None:
    """Replace the current process with the server (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-m", "dendrite_lite.server_process", str(config_path.resolve())]
    os.execv(sys.executable, args)


def _skip_httpx_cli() -> None:
    # httpx imports its `httpx` command-line tool (click, pygments, rich: 3.7 MB of RSS) whenever
    # rich happens to be installed, and typer installs it. The server never runs that tool; an
    # empty module in its place makes httpx fall back to its own stub `main`.
    sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        print("usage: python -m dendrite_lite.server_process CONFIG_PATH", file=sys.stderr)
        raise SystemExit(2)
    _skip_httpx_cli()
    from dendrite_lite.config import ConfigError, load_config
    from dendrite_lite.server import run

    try:
        config = load_config(Path(argv[0]))
    except ConfigError as e:  # changed between the CLI's check and here
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    run(config)


if __name__ == "__main__":
    main(sys.argv[1:])
