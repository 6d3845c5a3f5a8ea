"""Wakes long-polling /sync requests of exactly the users a write concerns.

Usage avoids the lost-wakeup race: a /sync registers its listener BEFORE it checks the database for
news, so an event committed between the check and the wait still wakes it.

    with notifier.listen(user_id) as listener:
        if not await has_news(since):
            await listener.wait(timeout_s)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["Notifier", "Listener"]


class Listener:
    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True if woken, False on timeout."""
        if timeout_s <= 0:
            return self._event.is_set()
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class Notifier:
    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = {}
        self._closed = False

    @contextmanager
    def listen(self, user_id: str) -> Iterator[Listener]:
        listener = Listener()
        if self._closed:
            listener.wake()
        self._listeners.setdefault(user_id, set()).add(listener)
        try:
            yield listener
        finally:
            bucket = self._listeners.get(user_id)
            if bucket is not None:
                bucket.discard(listener)
                if not bucket:
                    del self._listeners[user_id]

    def notify(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            for listener in self._listeners.get(user_id, ()):
                listener.wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Server shutdown: wake every waiting /sync, and every later one at once, so long-polls
        answer now instead of holding the graceful stop for their whole timeout."""
        self._closed = True
        for bucket in self._listeners.values():
            for listener in bucket:
                listener.wake()

    def listening_users(self) -> int:
        return len(self._listeners)

    def waiting(self) -> int:
        """The /sync requests listening now (metrics: computed when scraped, so sync pays nothing)."""
        return sum(len(bucket) for bucket in self._listeners.values())
