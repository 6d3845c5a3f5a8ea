"""The email pusher's rules (push/email_schedule.py): the delay, the per-room throttle, and
where the position may move."""

from __future__ import annotations

from dendrite_lite.push.email_schedule import Pending, plan

MIN = 60_000
DELAY, THROTTLE = 10 * MIN, 60 * MIN


def _plan(rows: list[Pending], now: int, last_sent: dict[str, int] | None = None):
    return plan(rows, last_sent or {}, now_ms=now, delay_ms=DELAY, throttle_ms=THROTTLE)


def test_nothing_is_mailed_before_the_delay() -> None:
    rows = [Pending("!a", 5, 0, False)]
    p = _plan(rows, DELAY - 1)
    assert p.mail == []
    assert p.position is None and p.next_due_ms == DELAY
    after = _plan(rows, DELAY)
    assert after.mail == rows and after.position == 5 and after.next_due_ms is None


def test_read_rows_are_passed_over_and_never_mailed() -> None:
    rows = [Pending("!a", 1, 0, True), Pending("!a", 2, 0, True), Pending("!a", 3, DELAY, False)]
    early = _plan(rows, DELAY)
    assert early.mail == [] and early.position == 2 and early.next_due_ms == 2 * DELAY
    ripe = _plan(rows, 2 * DELAY)
    assert ripe.mail == [rows[2]] and ripe.position == 3
    assert _plan(rows[:2], 0).position == 2


def test_a_throttled_room_waits_for_its_window() -> None:
    rows = [Pending("!a", 7, 0, False)]
    throttled = _plan(rows, DELAY, last_sent={"!a": DELAY - MIN})
    assert throttled.mail == [] and throttled.position is None
    assert throttled.next_due_ms == DELAY - MIN + THROTTLE
    assert _plan(rows, DELAY - MIN + THROTTLE, last_sent={"!a": DELAY - MIN}).mail == rows


def test_a_mail_takes_every_unread_row_along() -> None:
    rows = [
        Pending("!busy", 1, 0, False), Pending("!quiet", 2, MIN, False),
        Pending("!busy", 3, 5 * MIN, True), Pending("!quiet", 4, 3 * MIN, False),
        Pending("!busy", 5, 6 * MIN, False),
    ]
    # !busy was mailed about 20 minutes ago; !quiet's row 2 is ripe: one mail with all unread,
    # the not yet ripe row 5 and the throttled room's rows too (a burst is one mail).
    out = _plan(rows, DELAY + MIN, last_sent={"!busy": DELAY + MIN - 20 * MIN})
    assert [r.stream_ordering for r in out.mail] == [1, 2, 4, 5]
    assert out.position == 5 and out.next_due_ms is None


def test_only_throttled_ripe_rows_send_nothing_and_keep_the_position() -> None:
    rows = [Pending("!a", 1, 0, False), Pending("!a", 2, 0, True)]
    out = _plan(rows, DELAY, last_sent={"!a": DELAY})
    assert out.mail == [] and out.position is None and out.next_due_ms == DELAY + THROTTLE


def test_zero_throttle_mails_every_ripe_row() -> None:
    rows = [Pending("!a", 1, 0, False)]
    out = plan(rows, {"!a": 5}, now_ms=5, delay_ms=0, throttle_ms=0)
    assert out.mail == rows and out.position == 1
