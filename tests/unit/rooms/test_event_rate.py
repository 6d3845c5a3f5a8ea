"""The dashboard's events per second: one-second buckets over the last minute."""

from __future__ import annotations

from dendrite_lite.rooms.event_rate import WINDOW_S, EventRate
from tests.helpers import make_event


def test_counts_the_last_minute_only() -> None:
    now = [1000.0]
    rate = EventRate("example.org", clock=lambda: now[0])
    rate.count(30, 6)
    now[0] += 59
    rate.count(30, 0)
    assert rate.per_second() == (60 / WINDOW_S, 6 / WINDOW_S)
    now[0] += 1  # the first second leaves the window
    assert rate.per_second() == (30 / WINDOW_S, 0.0)
    now[0] += 3600  # a slot reused an hour later starts from zero
    rate.count(1, 0)
    assert rate.per_second() == (1 / WINDOW_S, 0.0)


async def test_local_at_commit_remote_at_persist_by_sender() -> None:
    rate = EventRate("example.org", clock=lambda: 5.0)
    ours = make_event("10", "m.room.message", "@alice:example.org", {"body": "hi"})
    theirs = make_event("10", "m.room.message", "@bob:other.example", {"body": "hello"})
    # Our pipeline's persist hook sees only our events: they are counted at commit instead.
    await rate.prepare("!r:example.org", [ours, ours])
    rate.local_committed("!r:example.org", [ours, ours])
    # The federation ingest's persist hook: other servers' events.
    await rate.prepare("!r:example.org", [theirs, theirs, theirs])
    assert rate.per_second() == (2 / WINDOW_S, 3 / WINDOW_S)
