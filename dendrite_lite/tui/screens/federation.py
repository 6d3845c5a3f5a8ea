"""The Federation screen: every destination's health (last success, last error, backoff, queue
length) through the admin API's federation/destinations, with reset connection and the
doctor's checks of one destination."""

from __future__ import annotations

import time
from typing import Any, ClassVar
from urllib.parse import quote

from textual import work
from textual.binding import Binding, BindingType

from dendrite_lite.delegation.doctor.findings import duration, utc_time
from dendrite_lite.tui.admin_client import AdminClient
from dendrite_lite.tui.widgets import (
    DetailsScreen,
    ListingScreen,
    Row,
    admin_call,
)

__all__ = ["FederationScreen", "FindingsScreen"]

DESTINATIONS = "/_synapse/admin/v1/federation/destinations"
CHECK = "/_dendrite_lite/admin/v1/federation/check"
PAGE = 500
# The error column shows the start of the message; enter shows all of it.
ERROR_WIDTH = 30


def destination_path(name: str, *rest: str) -> str:
    return "/".join([DESTINATIONS, quote(name, safe=""), *rest])


def _ago(ms: Any) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "never"
    return duration(time.time() - ms / 1000) + " ago"


def _health(d: dict[str, Any]) -> tuple[str, ...]:
    interval = d.get("retry_interval") or 0
    failed = d.get("last_failure_ts")
    return (
        d["destination"],
        _ago(d.get("last_success_ts")),
        _ago(failed) if failed else "",
        duration(interval / 1000) if interval else "",
        str(d.get("queue_length", "")),
        (d.get("last_error") or "")[:ERROR_WIDTH] if interval else "",
    )


def describe(d: dict[str, Any]) -> str:
    """Every field of one destination, one per line, times in UTC and as an age."""
    lines = []
    for key, value in d.items():
        if key.endswith("_ts") and isinstance(value, int) and value > 0:
            value = f"{utc_time(value / 1000)} ({_ago(value)})"
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


class FederationScreen(ListingScreen):
    HEADING = "Federation destinations"
    COLUMNS = ("Destination", "Last success", "Last error", "Backoff", "Queue", "Error")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", priority=True),
        Binding("R", "reset", "Reset"),
        Binding("c", "check", "Doctor"),
    ]

    async def fetch(self, term: str) -> list[Row]:
        params = {"limit": str(PAGE)}
        if term:
            params["destination"] = term
        answer = await self.client.get(DESTINATIONS, **params)
        self.total = answer.get("total")
        return [
            Row(d["destination"], _health(d), d) for d in answer.get("destinations", [])
        ]

    def open_row(self, row: Row) -> None:
        self.show_details(destination_path(row.key), f"Destination {row.key}", describe)

    @work
    async def action_reset(self) -> None:
        row = self.selected()
        question = (
            "Reset the connection to {}? Its backoff ends and sending resumes now."
        )
        if row is None or not await self.confirmed(question.format(row.key)):
            return
        request = self.client.post(destination_path(row.key, "reset_connection"))
        await self.change(request, f"Connection to {row.key} reset")

    @work
    async def action_check(self) -> None:
        row = self.selected()
        if row is None:
            return
        self.notify(f"Checking {row.key}…")
        report = await admin_call(
            self, self.client.post(f"{CHECK}/{quote(row.key, safe='')}")
        )
        if report is not None:
            self.app.push_screen(FindingsScreen(self.client, report))


class FindingsScreen(ListingScreen):
    """The doctor's findings for one server name; enter shows one finding's why and fix."""

    COLUMNS = ("Status", "Area", "Finding")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "select", "Fix", priority=True),
    ]

    def __init__(self, client: AdminClient, report: dict[str, Any]) -> None:
        super().__init__(client)
        self.report = report
        self.heading = (
            f"Doctor: {report.get('server_name', '?')} {report.get('status', '?')}"
        )

    async def fetch(self, term: str) -> list[Row]:
        rows = [
            Row(str(i), (f["status"], f["area"], f["why"]), f)
            for i, f in enumerate(self.report.get("findings", []))
        ]
        return [r for r in rows if term.lower() in " ".join(r.cells).lower()]

    def open_row(self, row: Row) -> None:
        f = row.data
        text = f"{f['status']}  {f['area']}  ({f['check']})\n\n{f['why']}"
        if f.get("fix"):
            text += f"\n\nFix:\n{f['fix']}"
        self.app.push_screen(DetailsScreen(f"Finding {f['check']}", text))
