"""The server's own process image: `dendrite-lite run` checks the config, then execs this.

    python -m dendrite_lite.server_process CONFIG_PATH

Why a separate image: the CLI framework stays loaded for the life of the process otherwise, and
typer (0.29) brings pydantic and rich with it. Measured idle RSS of a fresh server on this
machine: 57.1 MB when served from inside the typer command, 47.3 MB from this module, 43.7 MB
with httpx's command-line module kept out as well (below). exec keeps the PID, so systemd and
anyone holding the PID still see the same process.
"""

from __future__ import annotations

import importlib.util
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


def _keep_out_unused_imports() -> None:
    """Keep libraries' optional parts the server never uses out of its memory (~3.8 MB)."""
    # httpx imports its `httpx` command-line tool (click, pygments, rich: 3.7 MB of RSS) whenever
    # rich happens to be installed, and typer installs it. The server never runs that tool; an
    # empty module in its place makes httpx fall back to its own stub `main`.
    sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
    # httpcore loads its HTTP/2 support (h2, hpack, hyperframe: 1.2 MB) whenever h2 is installed
    # (matrix-nio brings it into the test environment); federation speaks HTTP/1.1 only.
    # A None entry makes `import h2` raise ImportError, which httpcore handles.
    sys.modules.setdefault("h2", None)  # type: ignore[arg-type]
    # `import uvicorn` runs its package __init__, which imports its command line (click) and
    # process supervisors (multiprocessing): 2.5 MB of RSS. The server needs uvicorn.config and
    # uvicorn.server only; an uninitialised package module lets those load on their own.
    if "uvicorn" not in sys.modules:
        spec = importlib.util.find_spec("uvicorn")
        if spec is not None and spec.submodule_search_locations is not None:
            package = importlib.util.module_from_spec(spec)
            sys.modules["uvicorn"] = package
            from uvicorn.config import Config

            package.Config = Config  # type: ignore[attr-defined]  # `from uvicorn import Config` in uvicorn.lifespan


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        print("usage: python -m dendrite_lite.server_process CONFIG_PATH", file=sys.stderr)
        raise SystemExit(2)
    _keep_out_unused_imports()
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
