"""Events stored per second, ours and other servers', over the last minute (the dashboard's
"events/s").

The local pipeline's commit hook counts our events, the persist hook the federation ingest
shares counts other servers' (by their sender), into one-second buckets: a ring of WINDOW_S
counters per side, so counting is an integer add and nothing is written anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from dendrite_lite.events.event import Event

__all__ = ["WINDOW_S", "EventRate"]

WINDOW_S = 60


class EventRate:
    def __init__(self, server_name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._suffix = f":{server_name}"
        self._clock = clock
        # Per second slot: [the second it counts, local events, remote events].
        self._slots = [[-1, 0, 0] for _ in range(WINDOW_S)]

    def local_committed(self, room_id: str, events: Sequence[Event]) -> None:
        """The local pipeline's commit hook: our users' events (room creation's too)."""
        self.count(len(events), 0)

    async def prepare(self, room_id: str, events: Sequence[Event]) -> None:
        """The persist hook both pipelines share: other servers' events (ours are counted at
        commit, where room creation's are seen too). Nothing to write in their transaction."""
        remote = sum(1 for e in events if not e.sender.endswith(self._suffix))
        if remote:
            self.count(0, remote)

    def count(self, local: int, remote: int) -> None:
        second = int(self._clock())
        slot = self._slots[second % WINDOW_S]
        if slot[0] != second:
            slot[:] = [second, 0, 0]
        slot[1] += local
        slot[2] += remote

    def per_second(self) -> tuple[float, float]:
        """(local, remote) events per second over the last WINDOW_S seconds."""
        now = int(self._clock())
        recent = [s for s in self._slots if now - WINDOW_S < s[0] <= now]
        return (sum(s[1] for s in recent) / WINDOW_S, sum(s[2] for s in recent) / WINDOW_S)
