"""What the dashboard says for each certificate and doctor state (dashboard_rows, pure), and
its number formats."""

from __future__ import annotations

from typing import Any

from dendrite_lite.tui.screens.dashboard import (
    dashboard_rows,
    human_bytes,
    human_duration,
)

NOT_AFTER = 1_800_000_000.0  # 2027-01-15


def _status(
    certificate: dict[str, Any], doctor: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "users": {"local": 3, "active": 2},
        "rooms": 1,
        "events_per_second": {"local": 0.5, "remote": 0.25},
        "sync_waiters": 4,
        "rss_bytes": 50 * 1024 * 1024,
        "database_bytes": 1536,
        "media_bytes": 0,
        "certificate": certificate,
        "registration": "token",
        "doctor": doctor,
    }


def _row(status: dict[str, Any], label: str) -> tuple[str, list[str]]:
    """The row's text and the styles on it."""
    value = dict(dashboard_rows(status))[label]
    styles = [str(span.style) for span in value.spans] + [str(value.style)]
    return value.plain, [s for s in styles if s]


def test_acme_certificate_renewal_states() -> None:
    fine = {
        "mode": "acme",
        "not_after": NOT_AFTER,
        "days_left": 60.2,
        "renewal": "due 2026-12-16",
    }
    assert _row(_status(fine), "Certificate") == (
        "acme: valid until 2027-01-15 (60 days), renewal due 2026-12-16",
        [],
    )
    failing = {
        **fine,
        "days_left": 5.0,
        "renewal": "failing (3 in a row): connection refused",
    }
    text, styles = _row(_status(failing), "Certificate")
    assert text == (
        "acme: valid until 2027-01-15 (5 days), renewal failing (3 in a row): connection refused"
    )
    assert (
        "red" in styles and "yellow" in styles
    )  # near expiry, and why it is not renewed
    none_yet = {
        "mode": "acme",
        "not_after": None,
        "days_left": None,
        "renewal": "waiting for the first certificate",
        "error": "",
    }
    assert (
        _row(_status(none_yet), "Certificate")[0] == "acme: no certificate (none yet)"
    )
    proxy = {"mode": "proxy", "not_after": None, "days_left": None, "renewal": None}
    assert (
        _row(_status(proxy), "Certificate")[0]
        == "HTTPS by the reverse proxy (tls.mode = proxy)"
    )


def test_other_rows() -> None:
    status = _status(
        {"mode": "proxy"},
        {
            "worst": "WARN",
            "counts": {"OK": 9, "WARN": 2, "FAIL": 0},
            "ran_at": NOT_AFTER,
        },
    )
    rows = {label: value.plain for label, value in dashboard_rows(status)}
    assert rows == {
        "Users": "3 local, 2 active in 30 days",
        "Rooms": "1",
        "Events/s": "0.50 local, 0.25 remote (last minute)",
        "Sync waiters": "4",
        "Memory (RSS)": "50.0 MiB",
        "Database": "1.5 KiB",
        "Media": "0 B",
        "Certificate": "HTTPS by the reverse proxy (tls.mode = proxy)",
        "Registration": "token",
        "Doctor": "WARN  0 fail, 2 warn, 9 ok (2027-01-15)",
    }


def test_formats() -> None:
    assert [
        human_bytes(n) for n in (None, 0, 1023, 1024, 5 * 1024**3, 3000 * 1024**3)
    ] == ["unknown", "0 B", "1023 B", "1.0 KiB", "5.0 GiB", "3000.0 GiB"]
    assert [human_duration(s) for s in (59, 3600 + 61, 2 * 86400 + 3 * 3600 + 240)] == [
        "0m 59s",
        "1h 1m",
        "2d 3h 4m",
    ]
