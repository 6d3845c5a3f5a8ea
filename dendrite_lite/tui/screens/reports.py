"""The Reports screen: what users reported, newest first, through Synapse's event_reports admin
API; enter shows a report with the reported event, x dismisses it (after a confirmation)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual import work
from textual.binding import Binding, BindingType

from dendrite_lite.tui.widgets import (
    ListingScreen,
    Row,
    table_time,
)

__all__ = ["ReportsScreen", "describe_report"]

REPORTS = "/_synapse/admin/v1/event_reports"
PAGE = 500


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(r["id"]),
        table_time(r.get("received_ts")),
        r.get("name") or r.get("canonical_alias") or r.get("room_id", ""),
        r.get("sender") or "",
        r.get("user_id") or "",
        (r.get("reason") or "").replace("\n", " "),
    )


def describe_report(r: dict[str, Any]) -> str:
    """A report's fields, then the reported event as the server has it."""
    event = r.get("event_json")
    lines = [f"{key}: {value}" for key, value in r.items() if key != "event_json"]
    if event is not None:
        lines += [
            "",
            "Reported event:",
            json.dumps(event, indent=2, ensure_ascii=False),
        ]
    return "\n".join(lines)


class ReportsScreen(ListingScreen):
    HEADING = "Event reports"
    COLUMNS = ("ID", "Received (UTC)", "Room", "Sender", "Reported by", "Reason")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", priority=True),
        Binding("x", "dismiss_report", "Dismiss"),
    ]

    async def fetch(self, term: str) -> list[Row]:
        answer = await self.client.get(REPORTS, limit=str(PAGE))
        rows = [
            Row(str(r["id"]), _cells(r), r) for r in answer.get("event_reports", [])
        ]
        # The API filters by exact room or user ID only; the search box matches any column.
        return [r for r in rows if term.lower() in " ".join(r.cells).lower()]

    def open_row(self, row: Row) -> None:
        self.show_details(f"{REPORTS}/{row.key}", f"Report {row.key}", describe_report)

    @work
    async def action_dismiss_report(self) -> None:
        row = self.selected()
        question = "Dismiss report {} ({})? It is deleted."
        if row is None or not await self.confirmed(
            question.format(row.key, row.cells[5] or "no reason")
        ):
            return
        await self.change(
            self.client.delete(f"{REPORTS}/{row.key}"), f"Report {row.key} dismissed"
        )
