"""The command line every side-by-side workload shares (bench/key_exchange.py, bench/media.py):
--repeat, --servers, --json, --keep, --set and one flag per workload field; servers alternate
order between repeats; the markdown table of medians to stdout, every run's raw numbers to the
JSON file."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chat import SERVERS, Row, _cpus, markdown_table, run_one

__all__ = ["compare"]


def compare(
    doc: str,
    workload: type,
    run_workload: Callable[..., Awaitable[dict[str, Any]]],
    rows: Callable[[Any], list[Row]],
    default_json: str,
    *,
    check: Callable[[Any], str | None] = lambda w: None,
    extra: dict[str, Any] | None = None,
) -> None:
    """`check(workload)`: an error message for a workload that makes no sense, else None;
    `extra`: more keys for the JSON file."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--servers", default="dendrite-lite,synapse")
    ap.add_argument("--json", type=Path, default=Path(default_json))
    ap.add_argument("--keep", type=Path, default=None, help="copy each run's config and logs here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=TOML",
                    help="override a key of our config (experiments); repeatable")
    for name, default in asdict(workload()).items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    args = ap.parse_args()
    w = workload(**{f: getattr(args, f) for f in asdict(workload())})
    error = check(w)
    if error is not None:
        ap.error(error)
    names = [n.strip().lower() for n in args.servers.split(",") if n.strip()]
    if any(n not in SERVERS for n in names):
        ap.error(f"servers: {', '.join(SERVERS)}")
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for rep in range(args.repeat):
        for name in names if rep % 2 == 0 else names[::-1]:  # alternate: drift hits both alike
            print(f"[run {rep + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            metrics = run_one(name, w, args.keep, rep + 1, None, args.set, workload=run_workload)
            runs[name].append(metrics)
            print("  " + ", ".join(f"{k}={metrics[k]:.2f}" for k, *_ in rows(w)), file=sys.stderr)
    table = markdown_table(runs, rows(w))
    print(table)
    args.json.write_text(json.dumps({
        "workload": asdict(w), "repeat": args.repeat, **(extra or {}),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": runs, "table": table,
    }, indent=2))
    print(f"\nraw numbers: {args.json}", file=sys.stderr)
