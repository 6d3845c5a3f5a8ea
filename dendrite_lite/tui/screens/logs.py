"""Logs: a live tail of the server's log, from GET /_dendrite_lite/admin/v1/logs?after=N.

The server keeps its recent log lines in memory, numbered (log_buffer.py); this screen asks
for what came after the last number it has, every POLL_S seconds while it is shown.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from dendrite_lite.tui.admin_client import (
    AdminClient,
    AdminRequestError,
    AdminUnavailable,
)
from dendrite_lite.tui.messages import ServerUnavailable

__all__ = ["LOGS_PATH", "LogsScreen", "log_line"]

LOGS_PATH = "/_dendrite_lite/admin/v1/logs"
POLL_S = 1.0
# Lines kept on screen (the server keeps more; scrolling back further is for the journal).
MAX_LINES = 2000
_LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red", "DEBUG": "dim"}


def log_line(record: dict[str, Any]) -> Text:
    """One record as the screen shows it: time (UTC), level, logger, message."""
    level = str(record.get("level", ""))
    line = Text(time.strftime("%H:%M:%S ", time.gmtime(float(record.get("ts", 0)))))
    line.append(f"{level:<7} ", style=_LEVEL_STYLES.get(level, ""))
    line.append(f"{record.get('logger', '')}: ", style="dim")
    line.append(str(record.get("message", "")))
    return line


class LogsScreen(Screen[None]):
    DEFAULT_CSS = """
    LogsScreen #heading { background: $primary; color: $text; padding: 0 1; }
    LogsScreen RichLog { height: 1fr; }
    """
    # One key of its own: with the app's screen keys, the compact footer still fits 80 columns.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("space", "pause", "Pause")]

    def __init__(self, client: AdminClient) -> None:
        super().__init__()
        self.client = client
        self.after = 0  # the last record number shown
        self.paused = False

    def compose(self) -> ComposeResult:
        yield Static("Logs (live)", id="heading", markup=False)
        # Wrapped: a long line (a path, an error) is read whole on 80 columns, not scrolled to.
        yield RichLog(max_lines=MAX_LINES, wrap=True, markup=False, id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(RichLog).focus()
        self.fetch()
        self.set_interval(POLL_S, self._tick)

    def _tick(self) -> None:
        if self.is_current and not self.paused:
            self.fetch()

    @work(exclusive=True, group="logs")
    async def fetch(self) -> None:
        try:
            answer = await self.client.get(LOGS_PATH, after=self.after)
        except AdminUnavailable:
            self.post_message(ServerUnavailable())
            return
        except AdminRequestError as e:
            self.notify(f"{e.errcode}: {e.error}", title="Logs", severity="error")
            return
        records = answer.get("records", [])
        if answer.get("restarted"):
            self.query_one(RichLog).write(Text("-- the server restarted --", style="bold"))
        log = self.query_one(RichLog)
        for record in records:
            log.write(log_line(record))
        self.after = int(answer.get("next_after", self.after))

    def action_pause(self) -> None:
        self.paused = not self.paused
        heading = "Logs (paused: space resumes)" if self.paused else "Logs (live)"
        self.query_one("#heading", Static).update(heading)
