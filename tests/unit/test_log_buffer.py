"""The in-memory tail of the server's log (log_buffer.py): numbered, ordered, bounded."""

from __future__ import annotations

import io
import logging

from dendrite_lite.log_buffer import LogBuffer, install_log_buffer
from dendrite_lite.logging_setup import configure_logging


def _logger(buffer: LogBuffer) -> logging.Logger:
    logger = logging.getLogger("dendrite_lite.test_log_buffer")
    logger.handlers = [buffer]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_numbered_in_order_and_read_on_from_a_number() -> None:
    buffer = LogBuffer(capacity=3)
    log = _logger(buffer)
    log.info("one %s", "a")
    log.warning("two\nforged line \x1b[31m")
    assert [(line.seq, line.level, line.message) for line in buffer.after(0, 10)] == [
        (1, "INFO", "one a"),
        # One record stays one line; a terminal escape is shown, not played.
        (2, "WARNING", "two\\nforged line \\x1b[31m"),
    ]
    assert [line.seq for line in buffer.after(1, 10)] == [2]
    assert buffer.after(2, 10) == []
    for i in range(3, 7):
        log.info("n%d", i)
    # Only the newest 3 are kept; a reader far behind gets the oldest kept, `limit` at a time.
    assert [line.seq for line in buffer.after(0, 2)] == [4, 5]
    assert [line.seq for line in buffer.after(4, 10)] == [5, 6]
    assert buffer.after(0, 10)[-1].to_json()["message"] == "n6"


def test_an_exception_is_named_on_its_line() -> None:
    buffer = LogBuffer()
    log = _logger(buffer)
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("handler failed")
    assert buffer.after(0, 1)[0].message == "handler failed (ValueError: bad value)"


def test_installed_once() -> None:
    logger = logging.getLogger("dendrite_lite.test_log_buffer.install")
    first = install_log_buffer(logger)
    assert install_log_buffer(logger) is first
    assert logger.handlers.count(first) == 1
    logger.removeHandler(first)


def test_configure_logging_keeps_the_tail() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging("info", stream=io.StringIO())
        buffer = install_log_buffer()
        logging.getLogger("dendrite_lite.x").info("before the second configure")
        configure_logging("info", stream=io.StringIO())
        assert install_log_buffer() is buffer
        assert [h for h in root.handlers if isinstance(h, LogBuffer)] == [buffer]
        assert buffer.after(0, 10**6)[-1].message == "before the second configure"
    finally:
        root.handlers, root.level = saved, level
