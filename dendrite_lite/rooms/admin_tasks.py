"""Background admin jobs (history purges, room deletions) and their status, as Synapse's admin
API reports them (purge_history_status, delete_status): `active` while running, then
`complete` or `failed` with the error. Kept in memory, like Synapse's, for a day after they end
or until a restart: a status is for watching a job, not a record."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.errors import MatrixError

__all__ = ["AdminTask", "AdminTasks"]

log = logging.getLogger(__name__)

KEEP_FINISHED_S = 24 * 3600


@dataclass(slots=True)
class AdminTask:
    task_id: str
    room_id: str
    status: str = "active"  # active | complete | failed
    error: str | None = None
    # What the job wants reported while and after it runs (a deletion's shutdown_room).
    result: dict[str, Any] = field(default_factory=dict)
    finished_at: float | None = None


class AdminTasks:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tasks: dict[str, AdminTask] = {}
        self._running: set[asyncio.Task[None]] = set()

    def start(
        self, room_id: str, job: Callable[[AdminTask], Awaitable[None]]
    ) -> AdminTask:
        """Run `job` in the background; it may fill its task's `result` as it goes."""
        self._forget_old()
        task = AdminTask(task_id=secrets.token_urlsafe(12), room_id=room_id)
        self._tasks[task.task_id] = task
        runner = asyncio.create_task(
            self._run(task, job), name=f"admin-task-{task.task_id}"
        )
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)
        return task

    async def _run(
        self, task: AdminTask, job: Callable[[AdminTask], Awaitable[None]]
    ) -> None:
        try:
            await job(task)
            task.status = "complete"
        except MatrixError as e:
            task.status, task.error = "failed", e.error
        except Exception as e:  # reported through the status; the server goes on
            log.exception("admin task %s on %s failed", task.task_id, task.room_id)
            task.status, task.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            task.finished_at = self._clock()

    def get(self, task_id: str) -> AdminTask | None:
        return self._tasks.get(task_id)

    def for_room(self, room_id: str) -> list[AdminTask]:
        return [t for t in self._tasks.values() if t.room_id == room_id]

    def _forget_old(self) -> None:
        cutoff = self._clock() - KEEP_FINISHED_S
        for task_id, task in list(self._tasks.items()):
            if task.finished_at is not None and task.finished_at < cutoff:
                del self._tasks[task_id]

    async def close(self) -> None:
        """Wait for running jobs (their writes are single transactions, started or not)."""
        for runner in list(self._running):
            runner.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
