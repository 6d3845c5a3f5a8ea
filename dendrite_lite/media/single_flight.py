"""One run of a piece of work per key, however many callers ask for it at once.

Used where many requests arrive for the same outside resource in the same moment (a link
posted in a big room, everyone's client asking for its preview; an avatar of a remote user
every member's client downloads): the first caller starts the work, later ones wait for its
result or its exception. The work runs in a task of its own, so a caller that hangs up does not
cancel it for the others (nor leave a half-fetched file behind). Once it ends, the key is free:
the next caller finds the result where the work put it (a cache) or starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def running(self, key: K) -> bool:
        return key in self._running

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(task)
