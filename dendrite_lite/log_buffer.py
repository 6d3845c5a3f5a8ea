"""The server's recent log lines in memory, for the TUI's live tail (GET
/_dendrite_lite/admin/v1/logs?after=N).

A logging handler on the root logger keeps the last CAPACITY records, each numbered from 1 in
the order logged, so a reader asks for "what came after N" and never misses or repeats a line
while it keeps up; a reader that fell more than CAPACITY behind gets the oldest kept. Cheap by
construction: one formatted message and a deque append per record (no I/O, no lock beyond the
handler's own), and the deque drops the oldest by itself.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from dendrite_lite.logging_setup import escape_unprintable

__all__ = ["CAPACITY", "LogBuffer", "LogLine", "install_log_buffer"]

# About 1 MB at ~200 bytes a line: a few minutes of a busy server, hours of a quiet one.
CAPACITY = 5000


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    ts: float  # seconds since the epoch
    level: str
    logger: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {"seq": self.seq, "ts": self.ts, "level": self.level, "logger": self.logger,
                "message": self.message}


class LogBuffer(logging.Handler):
    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__()
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self.last_seq = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break logging (as logging does)
            self.handleError(record)
            return
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.last_seq += 1
        self._lines.append(
            LogLine(self.last_seq, record.created, record.levelname, record.name,
                    escape_unprintable(message))
        )

    def after(self, seq: int, limit: int) -> list[LogLine]:
        """The records numbered above `seq`, oldest first, at most `limit` (the oldest ones)."""
        lines = self._lines
        if not lines or seq >= self.last_seq:
            return []
        # Numbers are contiguous, so the first wanted record's place is known without a search.
        start = max(0, len(lines) - (self.last_seq - seq))
        return [lines[i] for i in range(start, min(len(lines), start + limit))]


def install_log_buffer(logger: logging.Logger | None = None) -> LogBuffer:
    """The LogBuffer on `logger` (default: the root logger), added if it has none."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if isinstance(handler, LogBuffer):
            return handler
    buffer = LogBuffer()
    target.addHandler(buffer)
    return buffer
