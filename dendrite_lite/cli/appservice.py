"""`dendrite-lite appservice list`: the application services of the config's registration
files, and what waits for each (read from the database file; no server needed)."""

from __future__ import annotations

import datetime
from typing import Any

import aiosqlite
import typer

from dendrite_lite.appservice.registration import Registration, load_registrations
from dendrite_lite.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    load_config_or_exit,
    run_on_storage,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table

__all__ = ["app"]

app = typer.Typer(help="Application services (bridges) and their delivery.", no_args_is_help=True)


@app.command("list")
def list_appservices(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Each registration (id, url, sender, namespaces, options) and its queue."""
    cfg = load_config_or_exit(config)
    regs = load_registrations(cfg.appservices.registration_files, cfg.server.server_name)
    if not regs:
        typer.echo("No application services (appservices.registration_files is empty).")
        return

    async def load(storage: Storage) -> tuple[Any, Any]:
        async def read(conn: aiosqlite.Connection) -> tuple[Any, Any]:
            return await table.select_states(conn), await table.select_pending_counts(conn)

        return await storage.db.read(read)

    states, counts = run_on_storage(cfg, load)
    for reg in regs:
        typer.echo(_describe(reg, cfg.server.server_name, states.get(reg.id), counts.get(reg.id, 0)))


def _describe(reg: Registration, server_name: str, state: Any, queued: int) -> str:
    lines = [
        f"{reg.id}  ({reg.source})",
        f"  url: {reg.url or '(none: receives nothing)'}",
        f"  sender: {reg.sender(server_name)}",
    ]
    for kind in ("users", "aliases", "rooms"):
        for ns in reg.namespace(kind):
            lines.append(f"  {kind}: {ns.regex}{'  (exclusive)' if ns.exclusive else ''}")
    options = [
        name for name, on in (
            ("rate limited", reg.rate_limited), ("ephemeral events", reg.receive_ephemeral),
            ("device lists (MSC3202)", reg.device_lists),
            ("device management (MSC4190)", reg.device_management),
        ) if on
    ]
    lines.append(f"  options: {', '.join(options) or 'none'}")
    if reg.protocols:
        lines.append(f"  protocols: {', '.join(reg.protocols)}")
    lines.append(f"  queued: {queued} event(s)")
    if state is not None:
        lines.append(f"  last success: {_when(state.last_success_ts)}")
        if state.last_failure_ts:
            lines.append(f"  last failure: {_when(state.last_failure_ts)}: {state.last_failure_reason}")
        if state.next_retry_ts:
            lines.append(f"  next retry: {_when(state.next_retry_ts)}")
    return "\n".join(lines)


def _when(ts: int | None) -> str:
    if not ts:
        return "never"
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
