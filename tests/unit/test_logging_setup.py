"""dendrite_lite.logging_setup: journald-friendly line format and timestamp choice."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from dendrite_lite.logging_setup import configure_logging, wants_timestamps


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    # configure_logging replaces the root handlers, which would also drop pytest's capture.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    noisy = {n: logging.getLogger(n).level for n in ("httpx",)}
    yield
    root.handlers, root.level = saved[0], saved[1]
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


def test_timestamps_only_on_a_terminal_outside_journald() -> None:
    assert wants_timestamps(FakeTty(), {}) is True
    assert wants_timestamps(FakeTty(), {"JOURNAL_STREAM": "8:12345"}) is False
    assert wants_timestamps(io.StringIO(), {}) is False


def test_line_format_without_timestamp(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    logging.getLogger("dendrite_lite.access").info("GET /health 200 1ms 2")
    logging.getLogger("dendrite_lite.x").debug("hidden at info")
    assert out.getvalue() == "INFO dendrite_lite.access: GET /health 200 1ms 2\n"


def test_level_and_no_duplicate_handlers(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("warning", stream=out)
    configure_logging("warning", stream=out)  # twice must not double the lines
    logging.getLogger("a").info("no")
    logging.getLogger("a").warning("yes")
    assert out.getvalue() == "WARNING a: yes\n"


def test_timestamp_prefix_on_terminal(restore_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = FakeTty()
    configure_logging("debug", stream=out)
    logging.getLogger("b").debug("hello")
    line = out.getvalue()
    assert line.endswith(" DEBUG b: hello\n")
    assert line[:4].isdigit()  # asctime starts with the year


def test_tls_close_timeouts_from_vanished_peers_are_not_logged_as_errors() -> None:
    import io
    import logging

    from dendrite_lite.logging_setup import configure_logging

    out = io.StringIO()
    configure_logging("info", stream=out)
    log = logging.getLogger("asyncio")
    try:
        raise TimeoutError("SSL shutdown timed out")
    except TimeoutError:
        log.error("Unhandled exception in client_connected_cb", exc_info=True)
    try:
        raise TimeoutError("something else")
    except TimeoutError:
        log.error("another failure", exc_info=True)
    text = out.getvalue()
    assert "client_connected_cb" not in text
    assert "another failure" in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("/a%0A\nINFO forged: x", "/a%0A\\nINFO forged: x"),
        ("/a\r\nb", "/a\\r\\nb"),
        ("/a\u2028b\u2029c", "/a\\u2028b\\u2029c"),
        ("/a\x1b[2Jb", "/a\\x1b[2Jb"),
        ("/a\x85b\u202eb", "/a\\x85b\\u202eb"),
        ("/café/ü", "/café/ü"),
    ],
)
def test_values_from_clients_cannot_forge_log_lines(
    restore_root: None, value: str, shown: str
) -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    logging.getLogger("dendrite_lite.access").info("GET %s 404 1ms 2", value)
    assert out.getvalue() == f"INFO dendrite_lite.access: GET {shown} 404 1ms 2\n"


def test_tracebacks_keep_their_lines(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("x").error("failed on %s", "a\nb", exc_info=True)
    first, *rest = out.getvalue().splitlines()
    assert first == "ERROR x: failed on a\\nb"
    assert rest[0] == "Traceback (most recent call last):"
