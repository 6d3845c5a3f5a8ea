"""The task behind every persistent send queue: one request in flight, backoff on failure.

Federation destinations (federation/outbox.py) and application services (appservice/queue.py)
both run one `SendLoop`: it sleeps until woken (new rows committed, something in memory, the
peer talked to us) or until its backoff expires, then calls `_send_next()` until that says there
is nothing left. Subclasses implement `_send_next` (send one transaction; False when there was
nothing to send) and `_backoff` (record a failure and set `next_retry_ts`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

__all__ = ["SendLoop"]

log = logging.getLogger(__name__)


class SendLoop:
    def __init__(
        self, *, label: str, clock: Callable[[], float], retry_interval_ms: int = 0,
        next_retry_ts: int = 0,
    ) -> None:
        self._label = label  # names the task and the log lines
        self._clock = clock
        self.retry_interval_ms = retry_interval_ms
        self.next_retry_ts = next_retry_ts
        self._wake = asyncio.Event()
        self._wake.set()  # look at the queue once on start: rows may survive from a past run
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._label)

    @property
    def started(self) -> bool:
        return self._task is not None

    def wake(self) -> None:
        """Something new is queued (sent once any backoff is over)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the task to end after the request in flight (if any); see `join`."""
        self._stopping = True
        self._wake.set()

    async def join(self, timeout_s: float) -> None:
        """Wait for the task to end; cancel it after timeout_s (its rows stay for next time)."""
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _wait(self, timeout_s: float | None) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            pass

    async def _send_next(self) -> bool:
        raise NotImplementedError

    async def _backoff(self, reason: str) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while not self._stopping:
            wait_ms = self.next_retry_ts - self._now_ms()
            if wait_ms > 0:
                # Woken while backing off (new rows): nothing to do until the backoff ends.
                self._wake.clear()
                await self._wait(wait_ms / 1000)
                continue
            # Cleared BEFORE looking for work: anything queued from here on sets it again.
            self._wake.clear()
            try:
                worked = await self._send_next()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the queue for good
                log.exception("%s: unexpected error", self._label)
                await self._backoff("internal error (see log)")
                continue
            if not worked:
                await self._wait(None)
