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

__all__ = ["configure_logging", "wants_timestamps", "OneLineFormatter", "escape_unprintable"]

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
    """Install one stderr handler on the root logger at `level` (a config.logging.level value)."""
    out = stream if stream is not None else sys.stderr
    fmt = "%(levelname)s %(name)s: %(message)s"
    if wants_timestamps(out):
        fmt = "%(asctime)s " + fmt
    handler = logging.StreamHandler(out)
    handler.setFormatter(OneLineFormatter(fmt))
    root = logging.getLogger()
    # Replace rather than add, so calling this twice (tests, reload) never doubles every line.
    root.handlers = [handler]
    root.setLevel(_LEVELS.get(level.lower(), logging.INFO))
    # httpx (the command line's HTTP client) logs every request at info; keep its warnings.
    for noisy in ("httpx",):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _QuietTlsCloseTimeout) for f in asyncio_log.filters):
        asyncio_log.addFilter(_QuietTlsCloseTimeout())
