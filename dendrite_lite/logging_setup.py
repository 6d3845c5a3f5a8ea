"""Process-wide logging: one line per record, journald-friendly.

Under systemd (JOURNAL_STREAM is set) or when stderr is not a terminal, lines carry no timestamp:
journald and most log collectors add their own, and a second one only makes lines longer.
Format: `<LEVEL> <logger>: <message>`.

One record is one line: messages carry request paths, server names, event ids and errors from
clients and peers, so a `%0A` in a path (or U+2028, or a terminal escape) could otherwise forge
a line of its own in the log. Every character `str.isprintable()` rejects is written as an
escape (`\n`, `\x1b`, `\u2028`). Tracebacks, which follow the message, keep their lines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = [
    "JournalFormatter",
    "OneLineFormatter",
    "configure_logging",
    "escape_unprintable",
    "wants_timestamps",
    "writes_to_journal",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def wants_timestamps(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("JOURNAL_STREAM"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def escape_unprintable(text: str) -> str:
    """`text` with every unprintable character (controls, line and paragraph separators,
    format characters) replaced by its Python escape."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class OneLineFormatter(logging.Formatter):
    """A record's line (everything but its traceback) with unprintable characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_unprintable(super().formatMessage(record))


def writes_to_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether `stream` is systemd's journal: JOURNAL_STREAM names its device and inode."""
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return device.isdigit() and inode.isdigit() and (st.st_dev, st.st_ino) == (int(device), int(inode))


# syslog priorities (sd-daemon(3)): journald files a line starting with <N> under priority N.
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


class JournalFormatter(OneLineFormatter):
    """Each line starts with its syslog priority, so `journalctl -p warning` shows warnings and
    errors (a traceback's lines carry its record's priority too)."""

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelno
        priority = 2 if level > logging.ERROR else _PRIORITIES.get(level - level % 10, 7)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).split("\n"))


class _QuietTlsCloseTimeout(logging.Filter):
    """Drop asyncio's traceback for a peer that never answered our TLS close_notify.

    Federation peers that vanish (or hold idle connections) make asyncio log "Unhandled exception
    in client_connected_cb ... SSL shutdown timed out" at ERROR with a traceback, although the
    connection is simply gone and nothing was lost; a self-hoster would read it as a crash.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, TimeoutError) and "SSL shutdown timed out" in str(exc))


def configure_logging(level: str = "info", *, stream: TextIO | None = None) -> None:
    """Install one stderr handler on the root logger at `level` (a config.logging.level value),
    and the in-memory buffer of recent lines (log_buffer.py)."""
    out = stream if stream is not None else sys.stderr
    fmt = "%(levelname)s %(name)s: %(message)s"
    if wants_timestamps(out):
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(out)
    formatter = JournalFormatter if writes_to_journal(out) else OneLineFormatter
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    # Late: log_buffer uses this module's escaping.
    from dendrite_lite.log_buffer import LogBuffer, install_log_buffer

    # Replace rather than add, so calling this twice (tests, reload) never doubles every line;
    # the in-memory tail (the TUI's Logs screen) keeps its lines.
    root.handlers = [handler, *(h for h in root.handlers if isinstance(h, LogBuffer))]
    install_log_buffer(root)
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    # httpx (the command line's HTTP client) logs every request at info; keep its warnings.
    for noisy in ("httpx",):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _QuietTlsCloseTimeout) for f in asyncio_log.filters):
        asyncio_log.addFilter(_QuietTlsCloseTimeout())
