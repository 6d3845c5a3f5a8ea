"""One task that does a table's due work when its earliest time comes: the persistent timer of
MSC2228 expiry (rooms.event_expiry) and MSC4140 delayed events (rooms.delayed_events).

- The schedule lives in a table, so a restart loses nothing: the task runs the work first
  thing, doing what fell due while the server was stopped.
- `run_due` does everything due now and answers the next due time (ms), None for nothing. The
  task sleeps until then; `wake()` (a row scheduled or moved) makes it run again at once.
- The wake flag is cleared before `run_due` reads the table, so a schedule made after the read
  still wakes the wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["DueTimer"]

log = logging.getLogger(__name__)

_RETRY_MS = 60_000


class DueTimer:
    def __init__(
        self, run_due: Callable[[], Awaitable[int | None]], what: str,
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self._run_due = run_due
        self._what = what  # for the log: "expiring self-destructing events"
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_ts = await self._run_due()
            except Exception:  # the task must outlive a bad moment
                log.exception("%s failed; retrying in a minute", self._what)
                next_ts = self._now_ms() + _RETRY_MS
            timeout = None if next_ts is None else max(0.0, (next_ts - self._now_ms()) / 1000)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
