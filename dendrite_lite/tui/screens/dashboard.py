"""The dashboard: the server at a glance, from GET /_dendrite_lite/admin/v1/status.

The app polls the status (tui/app.py) and sets `status` here; this screen only draws it. The
marks that need attention (certificate near expiry or failing renewal, doctor FAIL/WARN) use
the terminal's ANSI red and yellow, and say it in words too.
"""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static

from dendrite_lite.tui.admin_client import AdminClient

__all__ = ["STATUS_PATH", "DashboardScreen", "dashboard_rows", "human_bytes", "human_duration"]

STATUS_PATH = "/_dendrite_lite/admin/v1/status"
_DAY_S = 86400
# A certificate with fewer days left than this is shown in red (tls/status.py's own threshold).
_EXPIRY_WARNING_DAYS = 7


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, _DAY_S)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {s}s"


def _date(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _certificate(cert: dict[str, Any]) -> Text:
    mode = cert.get("mode")
    if mode == "proxy":
        return Text("HTTPS by the reverse proxy (tls.mode = proxy)")
    not_after, days = cert.get("not_after"), cert.get("days_left")
    if not_after is None or days is None:
        why = cert.get("error") or cert.get("last_error") or "none yet"
        return Text(f"{mode}: no certificate ({why})", style="red")
    line = Text(f"{mode}: valid until {_date(not_after)} ({days:.0f} days)")
    if days < _EXPIRY_WARNING_DAYS:
        line.stylize("red")
    renewal = cert.get("renewal") or ""
    if renewal:
        style = "yellow" if renewal.startswith("failing") else ""
        line.append(f", renewal {renewal}", style=style)
    return line


def _doctor(doctor: dict[str, Any] | None) -> Text:
    if doctor is None:
        return Text("never run (run `dendrite-lite doctor`)")
    counts = doctor.get("counts", {})
    worst = doctor.get("worst", "OK")
    style = {"FAIL": "red", "WARN": "yellow"}.get(worst, "green")
    line = Text(worst, style=f"bold {style}")
    line.append(
        f"  {counts.get('FAIL', 0)} fail, {counts.get('WARN', 0)} warn, {counts.get('OK', 0)} ok"
        f" ({_date(doctor.get('ran_at', 0))})"
    )
    return line


def dashboard_rows(status: dict[str, Any]) -> list[tuple[str, Text]]:
    """The dashboard's (label, value) lines for one status answer."""
    users, eps = status["users"], status["events_per_second"]
    return [
        ("Users", Text(f"{users['local']} local, {users['active']} active in 30 days")),
        ("Rooms", Text(str(status["rooms"]))),
        ("Events/s", Text(f"{eps['local']:.2f} local, {eps['remote']:.2f} remote (last minute)")),
        ("Sync waiters", Text(str(status["sync_waiters"]))),
        ("Memory (RSS)", Text(human_bytes(status["rss_bytes"]))),
        ("Database", Text(human_bytes(status["database_bytes"]))),
        ("Media", Text(human_bytes(status["media_bytes"]))),
        ("Certificate", _certificate(status["certificate"])),
        ("Registration", Text(status["registration"])),
        ("Doctor", _doctor(status["doctor"])),
        *([("Bridges", _appservices(status["appservices"]))] if status.get("appservices") else []),
    ]


def _appservices(appservices: list[dict[str, Any]]) -> Text:
    """One part per application service: its queue, in yellow while it is not taking them."""
    line = Text()
    for i, a in enumerate(appservices):
        if i:
            line.append("; ")
        if a.get("failing"):
            line.append(f"{a['id']}: {a['queued']} queued, failing ({a.get('last_error')})", style="yellow")
        else:
            line.append(f"{a['id']}: {a['queued']} queued")
    return line


class DashboardScreen(Screen[None]):
    DEFAULT_CSS = """
    DashboardScreen #heading { background: $primary; color: $text; padding: 0 1; }
    DashboardScreen #body { padding: 1 1; height: 1fr; }
    """
    # Set by the app after each status poll (None until the first answer).
    status: reactive[dict[str, Any] | None] = reactive(None, always_update=True)

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client

    def compose(self) -> ComposeResult:
        yield Static("Dashboard", id="heading", markup=False)
        yield Static("Asking the server...", id="body")
        yield Footer()

    def watch_status(self, status: dict[str, Any] | None) -> None:
        if status is None or not self.query("#heading"):
            return  # not composed yet: on_mount draws it
        self.query_one("#heading", Static).update(
            f"{status['server_name']}  ·  dendrite-lite {status['version']}"
            f"  ·  up {human_duration(status['uptime_s'])}"
        )
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for label, value in dashboard_rows(status):
            grid.add_row(label, value)
        self.query_one("#body", Static).update(grid)

    def on_mount(self) -> None:
        self.watch_status(self.status)
