"""The server's own process image: `dendrite-lite run` checks the config, then execs this.

    python -OO -m dendrite_lite.server_process CONFIG_PATH

Why a separate image: the CLI framework stays loaded for the life of the process otherwise, and
typer (0.29) brings pydantic and rich with it (57.1 MB of idle RSS served from inside the typer
command, 47.3 MB from this module). Here it also loads without what the server never uses:
docstrings (-OO), signedjson's package __init__ (below), and ctypes (glibc's mmap
threshold comes from the environment, memory.py). exec keeps the PID, so systemd and anyone
holding the PID still see the same process.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from dendrite_lite.memory import MMAP_THRESHOLD, MMAP_THRESHOLD_ENV

__all__ = ["exec_server", "main"]


def exec_server(config_path: Path) -> None:
    """Replace the current process with the server (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-OO", "-m", "dendrite_lite.server_process", str(config_path.resolve())]
    env = dict(os.environ)
    env.setdefault(MMAP_THRESHOLD_ENV, str(MMAP_THRESHOLD))
    os.execve(sys.executable, args, env)


def _keep_out_unused_imports() -> None:
    """Load signedjson without running its package __init__, which only sets __version__,
    read with importlib.metadata: 2.6 MB of RSS (zipfile, csv, email, shutil with bz2 and
    lzma...) and a scan of sys.path at start. Its submodules load on their own under the
    uninitialised package."""
    _package_without_init("signedjson")


def _package_without_init(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:
        sys.modules[name] = importlib.util.module_from_spec(spec)


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
