"""The renewal and back-off policy (tls/renewal.py): pure functions, plain data."""

from __future__ import annotations

import dataclasses
import random

import pytest

from dendrite_lite.tls.renewal import (
    after_failure,
    after_success,
    backoff_delay,
    next_attempt_at,
    parse_retry_after,
    pick_in_window,
    renewal_at,
)
from dendrite_lite.tls.state import AcmeState

HOUR = 3600.0
DAY = 24 * HOUR
NOW = 1_800_000_000.0


def test_backoff_doubles_from_an_hour_and_stops_at_a_day() -> None:
    assert [backoff_delay(n) / HOUR for n in range(1, 8)] == [1, 2, 4, 8, 16, 24, 24]
    assert backoff_delay(100) == DAY


def test_renewal_is_due_when_a_third_of_the_lifetime_remains() -> None:
    # Let's Encrypt's 90 days: day 60.
    assert renewal_at(NOW, NOW + 90 * DAY) == NOW + 60 * DAY
    # Short-lived certificates (6 days): day 4.
    assert renewal_at(NOW, NOW + 6 * DAY) == NOW + 4 * DAY


def test_ari_time_is_uniform_in_the_window() -> None:
    rng = random.Random(7)
    picks = [pick_in_window(NOW + DAY, NOW + 2 * DAY, NOW, rng) for _ in range(200)]
    assert all(NOW + DAY <= p <= NOW + 2 * DAY for p in picks)
    # Spread over the window, not bunched at one end.
    assert min(picks) < NOW + 1.2 * DAY and max(picks) > NOW + 1.8 * DAY


def test_ari_window_in_the_past_means_now() -> None:
    assert pick_in_window(NOW - 2 * DAY, NOW - DAY, NOW, random.Random(1)) == NOW
    # An inverted window (the CA's mistake) uses its start, never before now.
    assert pick_in_window(NOW + DAY, NOW, NOW, random.Random(1)) == NOW + DAY
    assert pick_in_window(NOW - DAY, NOW - 2 * DAY, NOW, random.Random(1)) == NOW


def test_next_attempt() -> None:
    names = ("matrix.test",)
    issued = AcmeState(names=names, next_renewal=NOW + 60 * DAY)
    assert next_attempt_at(issued, names, has_certificate=True) == NOW + 60 * DAY
    # No certificate, or other names: now.
    assert next_attempt_at(issued, names, has_certificate=False) == 0.0
    assert next_attempt_at(issued, ("matrix.test", "example.test"), has_certificate=True) == 0.0
    assert next_attempt_at(issued, ("MATRIX.test",), has_certificate=True) == NOW + 60 * DAY
    # ...but never before the back-off.
    failing = dataclasses.replace(issued, failures=2, next_attempt=NOW + 2 * HOUR)
    assert next_attempt_at(failing, ("other.test",), has_certificate=True) == NOW + 2 * HOUR


def test_failures_back_off_and_keep_the_reason() -> None:
    state = after_failure(AcmeState(), "the CA could not validate", NOW)
    assert (state.failures, state.next_attempt, state.last_attempt) == (1, NOW + HOUR, NOW)
    assert state.last_error == "the CA could not validate"
    state = after_failure(state, "again", NOW + HOUR)
    assert (state.failures, state.next_attempt) == (2, NOW + 3 * HOUR)


def test_retry_after_longer_than_the_backoff_wins() -> None:
    state = after_failure(AcmeState(), "rate limited", NOW, retry_after=NOW + 5 * HOUR)
    assert state.next_attempt == NOW + 5 * HOUR
    # A shorter one does not shorten the back-off.
    state = after_failure(AcmeState(), "rate limited", NOW, retry_after=NOW + 60)
    assert state.next_attempt == NOW + HOUR


def test_success_clears_the_failures() -> None:
    failing = after_failure(after_failure(AcmeState(), "x", NOW), "y", NOW)
    state = after_success(
        failing, names=("a.test",), issuer="CN=CA", not_before=NOW, not_after=NOW + 90 * DAY,
        challenge="http-01", directory="https://ca/dir", now=NOW + 1,
    )
    assert (state.failures, state.next_attempt, state.last_error) == (0, None, "")
    assert (state.last_success, state.next_renewal) == (NOW + 1, NOW + 60 * DAY)
    assert state.names == ("a.test",)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", NOW + 120),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 1792567680.0),
        ("", None),
        ("soon", None),
    ],
)
def test_retry_after_header(header: str, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected
