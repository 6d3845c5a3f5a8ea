"""Local event batches queued to the storage writer but not yet committed (rooms/pipeline.py).

The pipeline releases a room's lock as soon as a batch's write job is on the writer's queue, and
builds the room's next batch on top of it, so a burst in one room shares one group commit instead
of paying one fsync per event. This module keeps what that needs between build and commit:

- `QueuedWrite`: one batch. Its write job records, as it runs, the state group and room stamp it
  left behind and whether anyone else wrote the room since the head it was built on; the next
  batch's job, built on it, reads those when IT runs (the writer runs jobs one after another, in
  queue order, so the predecessor has run by then, or failed).
- `QueuedWrites`: each room's last queued batch (its tail) and the transaction ids of queued
  batches, so a retried PUT /send finds the queued event instead of creating a second one.
- `RoomLock`: the per-room lock. The pipeline takes it with `building()` (no wait for queued
  writes: it builds on them); everyone else (`async with lock`, federation ingest) also waits,
  once it holds the lock, until every queued batch of the room has committed or failed, so what
  they read from the database is the room's real head and nothing is queued behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from dendrite_lite.events.event import Event

__all__ = ["QueuedWrite", "QueuedWrites", "RoomLock", "TxnKey", "retrieve"]

TxnKey = tuple[str, str, str]  # (user_id, device_id, txn_id)


@dataclass(eq=False, slots=True)
class QueuedWrite:
    room_id: str
    events: Sequence[Event]
    prev: QueuedWrite | None = field(repr=False)  # the batch built on, while that one was queued
    has_state: bool
    head: Any = field(default=None, repr=False)  # the pipeline's head after this batch
    # Set by the write job each time it runs (the writer may run a job again after another
    # job's error aborted their shared transaction):
    group_after: int | None = None
    stamp_after: int = -1
    clean: bool = False  # nobody else wrote the room between the built-on head and this job
    # Set by the commit task:
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    # One future per caller waiting for the outcome, resolved by the commit task: awaiting the
    # task itself would need a shield (a cancelled caller must not cancel it) and cost every
    # sender two more turns of the event loop.
    waiters: list[asyncio.Future[Any]] = field(default_factory=list, repr=False)
    on_queue: bool = False  # the job is on the writer's queue (it keeps queue order from here)
    settled: bool = False  # committed or failed
    failed: bool = False

    def chain(self) -> Iterator[QueuedWrite]:
        """This batch and the unsettled batches it was built on, newest first."""
        w: QueuedWrite | None = self
        while w is not None and not w.settled:
            yield w
            w = w.prev

    def blocks_building(self) -> bool:
        """Whether the next batch must wait for this one's commit instead of building on it.

        A queued state event: the persist hooks (unread counts, federation destinations) read
        the room's members from the database before a batch is queued, which would miss it.
        A failed batch: everything built on it fails too; wait, then rebuild from the database.
        """
        return any(w.has_state or w.failed for w in self.chain())

    def outcome(self) -> asyncio.Future[Any]:
        """A future of this caller's own for the commit task's result (or error). Take it at
        once (under the room lock) rather than when about to wait, so it cannot be missed."""
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiter.add_done_callback(retrieve)  # the caller may stop waiting (cancelled, failed)
        if self.task is not None and self.task.done():
            if self.task.cancelled():
                waiter.cancel()
            elif (error := self.task.exception()) is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(self.task.result())
        else:
            self.waiters.append(waiter)
        return waiter

    async def answering(self, work: Awaitable[Any]) -> Any:
        """Run the batch's commit work, then answer every waiting caller with its outcome."""
        try:
            result = await work
        except BaseException as e:
            self.resolve(error=e)
            raise
        self.resolve(result)
        return result

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        for waiter in self.waiters:
            if waiter.done():  # its caller went away
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(result)
        self.waiters.clear()

    async def wait_settled(self) -> None:
        """Until committed or failed (never raises the write's error)."""
        assert self.task is not None
        await asyncio.wait([self.task])


@dataclass(slots=True)
class QueuedWrites:
    tails: dict[str, QueuedWrite] = field(default_factory=dict)
    txns: dict[TxnKey, tuple[QueuedWrite, int]] = field(default_factory=dict)

    def add(self, write: QueuedWrite, txns: Sequence[TxnKey | None]) -> None:
        self.tails[write.room_id] = write
        for index, txn in enumerate(txns):
            if txn is not None:
                self.txns[txn] = (write, index)

    def settle(self, write: QueuedWrite, txns: Sequence[TxnKey | None], *, failed: bool) -> None:
        """The batch committed (its rows are readable now) or failed."""
        write.settled, write.failed = True, failed
        write.prev = None  # a busy room's chain must not keep every earlier batch alive
        if self.tails.get(write.room_id) is write:
            del self.tails[write.room_id]
        for txn in txns:
            if txn is not None and self.txns.get(txn, (None,))[0] is write:
                del self.txns[txn]

    async def drain(self, room_id: str) -> None:
        """Until every queued batch of the room has settled. The caller holds the room lock, so
        no new batch can be queued meanwhile."""
        while (tail := self.tails.get(room_id)) is not None:
            await tail.wait_settled()


class RoomLock(asyncio.Lock):
    """`async with lock` (or `acquire()`) holds the room AND waits for its queued writes;
    the pipeline builds with `async with lock.building()`, on top of them."""

    def __init__(self, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._drain = drain

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        try:
            await self._drain()
        except BaseException:
            self.release()
            raise
        return True

    @asynccontextmanager
    async def building(self) -> AsyncIterator[None]:
        await super().acquire()
        try:
            yield
        finally:
            self.release()


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's error as seen (no "never retrieved" log): whoever still awaits it gets
    the error all the same, and a caller that went away needs none."""
    if not future.cancelled():
        future.exception()
