"""The server's own process image: `dendrite-lite run` checks the config, then execs this.

    python -m dendrite_lite.server_process CONFIG_PATH

Why a separate image: the CLI framework stays loaded for the life of the process otherwise, and
typer brings pydantic and rich with it (57.1 MB of idle RSS served from inside the typer command,
47.3 MB from this module, measured on the earlier stack). exec keeps the PID, so systemd and
anyone holding the PID still see the same process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["exec_server", "leave_out_unused_modules", "main"]


def exec_server(config_path: Path) -> None:
    """Replace the current process with the server (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if getattr(sys, "frozen", False):
        # The PyInstaller binary: its interpreter cannot run `-m`, and exec'ing the binary again
        # would unpack it again; serve from this process instead.
        main([str(config_path.resolve())])
        raise SystemExit(0)
    args = [sys.executable, "-m", "dendrite_lite.server_process", str(config_path.resolve())]
    # The new image must find dendrite-lite where this one did: a zipapp's unpacked
    # site-packages (shiv) is on sys.path only, not where `python -m` looks by itself.
    here = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    os.execve(sys.executable, args, env)


def leave_out_unused_modules() -> None:
    """Before anything imports httpx: httpx imports its command-line client when rich, click
    and pygments are installed (dendrite-lite's CLI brings them), 4 MiB of RSS the server never
    uses. A None entry makes that import fail, which httpx handles by leaving its CLI out."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        print("usage: python -m dendrite_lite.server_process CONFIG_PATH", file=sys.stderr)
        raise SystemExit(2)
    leave_out_unused_modules()
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
