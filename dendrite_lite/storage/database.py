"""The SQLite database: one writer connection with group commit, and a small pool of readers.

Why one writer: SQLite allows one write transaction at a time. If every request opened its own
write transaction they would queue on SQLite's lock (and eventually see "database is locked"),
and each would pay its own fsync. Instead every write is a job on one asyncio queue; the writer
task takes every job that is waiting, runs them all inside ONE `BEGIN IMMEDIATE ... COMMIT`, each
in its own SAVEPOINT, and only then answers the callers. A burst of N writes therefore costs a
handful of fsyncs instead of N, and a job that fails rolls back to its savepoint and gets its own
exception without taking the rest of its group down.

Readers are separate connections: in WAL mode they never block the writer and never see a
half-finished group, because they only see committed transactions.

Statements run on the event loop thread (storage.inline): with aiosqlite every execute, fetch and
cursor close was a hop to the connection's thread and back, costing far more than the statement
(and, under load, GIL hand-overs of milliseconds). Only COMMIT (fsync) runs on the writer's own
thread, and BEGIN IMMEDIATE when another process holds the lock and it must wait. Reads in WAL mode
never wait for a lock; the price is that a huge read (the state of a 10,000-member room) holds
the loop for its duration instead of a thread, which is still less time than it spent hopping.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from dendrite_lite.storage.inline import InlineConnection

__all__ = ["Database", "DatabaseClosed", "WriteStats", "SYNCHRONOUS_MODES", "connect"]

log = logging.getLogger(__name__)

T = TypeVar("T")
TxnFn = Callable[[aiosqlite.Connection], Awaitable[T]]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_MS = 10_000
# A cap on one group keeps the latency of the first job in a huge burst bounded.
DEFAULT_MAX_GROUP = 256


class DatabaseClosed(RuntimeError):
    """A read or write was attempted after `Database.close()` began."""


@dataclass(slots=True)
class WriteStats:
    """Counters that let tests and benchmarks see group commit at work."""

    jobs: int = 0  # write jobs finished (successfully or not)
    failed_jobs: int = 0  # jobs whose own work raised (rolled back to their savepoint)
    commits: int = 0  # COMMITs that succeeded
    groups: int = 0  # BEGIN IMMEDIATE transactions started
    grouped_jobs: int = 0  # jobs that shared their transaction with at least one other job
    max_group: int = 0  # the largest number of jobs in one transaction
    retried_jobs: int = 0  # jobs re-run because another job's error aborted their transaction


@dataclass(slots=True)
class _Job:
    fn: TxnFn[Any]
    future: asyncio.Future[Any]
    result: Any = None


_STOP = object()


async def connect(
    path: Path, *, synchronous: str = "FULL", read_only: bool = False
) -> aiosqlite.Connection:
    """Open one connection with the pragmas every connection of ours needs.

    isolation_level=None puts the sqlite3 module in autocommit mode, so transactions begin and end
    exactly where our code says (the module's implicit BEGIN would break savepoints).
    """
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in _pragmas(synchronous, read_only=read_only):
        await conn.execute(pragma)
    return conn


READER_CACHE_KIB = 256
WRITER_CACHE_KIB = 512


def _pragmas(synchronous: str, *, read_only: bool) -> list[str]:
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}")
    pragmas = [
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
        # journal_mode is stored in the file; setting it again is a cheap no-op.
        "PRAGMA journal_mode = WAL",
        f"PRAGMA synchronous = {mode}",
        "PRAGMA foreign_keys = ON",
    ]
    # SQLite's page cache is per connection (default 2 MB each: 10 MB for the writer and four
    # readers); the OS page cache below it already holds the file, so a small one costs a
    # syscall per miss, not a disk read. Measured (bench/chat.py, RSS from the first send on):
    # 57.2 MB with the defaults, 53.2 MB with these; throughput and initial sync within noise.
    pragmas.append(f"PRAGMA cache_size = -{READER_CACHE_KIB if read_only else WRITER_CACHE_KIB}")
    if read_only:
        # Catches a write slipped into db.read() instead of letting it race the writer.
        pragmas.append("PRAGMA query_only = ON")
    return pragmas


def _connect_writer(path: Path, synchronous: str) -> sqlite3.Connection:
    """The writer's raw connection (opened on its thread; used from the loop thread too, but
    never from two threads at once: the writer task awaits every call it hands to the thread)."""
    return _connect_raw(path, synchronous, read_only=False)


def _connect_raw(path: Path, synchronous: str, *, read_only: bool) -> sqlite3.Connection:
    pragmas = _pragmas(synchronous, read_only=read_only)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in pragmas:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


class Database:
    """Use `await Database.open(path)`; then `write(fn)`, `read(fn)`, `close()`.

    `fn` is `async def fn(conn) -> T`. It must not BEGIN/COMMIT itself, and should only touch the
    connection: it runs inside the writer's transaction, and anything slow it awaits delays every
    other write in its group.
    """

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        readers: list[aiosqlite.Connection],
        *,
        max_group: int,
        writer_thread: ThreadPoolExecutor,
    ) -> None:
        self.path = path
        self.stats = WriteStats()
        # Told (jobs, seconds from BEGIN to the durable COMMIT) after every commit (metrics).
        self.on_commit: Callable[[int, float], None] | None = None
        self._raw_writer = writer
        # The job functions are typed against aiosqlite's API, which the adapter provides.
        self._writer = cast(aiosqlite.Connection, InlineConnection(writer))
        self._writer_thread = writer_thread
        self._readers = readers
        self._idle_readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in readers:
            self._idle_readers.put_nowait(conn)
        self._queue: asyncio.Queue[_Job | object] = asyncio.Queue()
        self._max_group = max_group
        self._closing = False
        self._writer_task = asyncio.create_task(self._run_writer(), name="db-writer")

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        synchronous: str = "FULL",
        readers: int = 4,
        max_group: int = DEFAULT_MAX_GROUP,
    ) -> Database:
        """Open the writer and `readers` reader connections. max_group=1 disables grouping."""
        if readers < 1:
            raise ValueError("readers must be at least 1")
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        _pragmas(synchronous, read_only=False)  # a bad mode fails here, before any thread starts
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        loop = asyncio.get_running_loop()
        try:
            writer = await loop.run_in_executor(thread, _connect_writer, path, synchronous)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        opened: list[aiosqlite.Connection] = []
        try:
            for _ in range(readers):
                raw = _connect_raw(path, synchronous, read_only=True)
                opened.append(cast(aiosqlite.Connection, InlineConnection(raw)))
        except BaseException:
            for conn in opened:
                cast(InlineConnection, conn).raw.close()
            await loop.run_in_executor(thread, writer.close)
            thread.shutdown(wait=False)
            raise
        return cls(path, writer, opened, max_group=max_group, writer_thread=thread)

    # -- public API -------------------------------------------------------------------------

    async def write(self, fn: TxnFn[T]) -> T:
        """Run fn in a write transaction; return its result once the commit is durable."""
        if self._closing:
            raise DatabaseClosed("database is closing")
        if asyncio.current_task() is self._writer_task:
            # fn awaiting another write would wait forever for the writer that is running fn.
            raise RuntimeError("db.write() called from inside a write job; do it in the same fn")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(fn, future))
        # shield: a caller that gives up must not cancel a job the writer may already be running.
        return await asyncio.shield(future)

    async def read(self, fn: TxnFn[T]) -> T:
        """Run fn on a reader connection inside one read transaction (one consistent snapshot)."""
        if self._closing:
            raise DatabaseClosed("database is closing")
        conn = await self._idle_readers.get()
        try:
            await conn.execute("BEGIN")
            try:
                return await fn(conn)
            finally:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
        finally:
            self._idle_readers.put_nowait(conn)

    async def close(self) -> None:
        """Refuse new work, let queued writes finish and in-flight reads end, close everything."""
        if self._closing:
            await self._writer_task
            return
        self._closing = True
        self._queue.put_nowait(_STOP)
        await self._writer_task
        # Taking every reader from the pool waits for the reads still running.
        for _ in self._readers:
            conn = await self._idle_readers.get()
            cast(InlineConnection, conn).raw.close()
        await self._on_writer_thread(self._raw_writer.close)
        self._writer_thread.shutdown(wait=True)

    # -- the writer task --------------------------------------------------------------------

    async def _on_writer_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, fn)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE on the loop thread when the write lock is free (the usual case: we are
        the database's only writer); when another process holds it, wait on the writer thread
        (busy_timeout) instead of blocking the loop."""
        raw = self._raw_writer
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorcode", sqlite3.SQLITE_BUSY) != sqlite3.SQLITE_BUSY:
                raise
        finally:
            raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await self._blocking("BEGIN IMMEDIATE")

    async def _blocking(self, sql: str) -> None:
        """A statement that may wait (lock, fsync): off the event loop."""
        await self._on_writer_thread(lambda: self._raw_writer.execute(sql).close())

    async def _run_writer(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, _Job)
            group = [item]
            # Everything already waiting joins this transaction: that is the group commit.
            while len(group) < self._max_group and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is _STOP:
                    # Jobs queued before close() still run; close() refuses any after it.
                    stopping = True
                    break
                assert isinstance(nxt, _Job)
                group.append(nxt)
            await self._run_group_safely(group)

    async def _run_group_safely(self, group: list[_Job]) -> None:
        try:
            await self._run_group(group)
        except Exception as e:  # the writer task must outlive any one bad group
            log.exception("writer: unexpected error in a group of %d jobs", len(group))
            if self._writer.in_transaction:
                await self._blocking("ROLLBACK")
            for job in group:
                if not job.future.done():
                    self._finish_failed(job, e)

    async def _run_group(self, group: list[_Job]) -> None:
        """Run jobs in one transaction; re-run survivors if a job's error aborted it."""
        pending = group
        while pending:
            pending = await self._attempt(pending)

    async def _attempt(self, jobs: list[_Job]) -> list[_Job]:
        """One BEGIN..COMMIT over jobs. Returns the jobs that must be retried (usually none)."""
        conn = self._writer
        self.stats.groups += 1
        self.stats.max_group = max(self.stats.max_group, len(jobs))
        started = time.perf_counter()
        try:
            await self._begin()
        except Exception as e:
            for job in jobs:
                self._finish_failed(job, e)
            return []
        ok: list[_Job]
        failed: list[tuple[_Job, BaseException]]
        if len(jobs) == 1:
            # Alone in its transaction a job needs no savepoint: two fewer thread hops.
            job = jobs[0]
            try:
                job.result = await job.fn(conn)
            except Exception as e:
                if conn.in_transaction:
                    await self._blocking("ROLLBACK")
                self._finish_failed(job, e)
                return []
            ok, failed = [job], []
        else:
            outcome = await self._run_savepointed(jobs)
            if isinstance(outcome, list):
                return outcome
            ok, failed = outcome
        try:
            await self._blocking("COMMIT")
        except Exception as e:
            if conn.in_transaction:
                await self._blocking("ROLLBACK")
            for job in ok:
                self._finish_failed(job, e)
            for job, error in failed:
                self._finish_failed(job, error)
            return []
        self.stats.commits += 1
        if self.on_commit is not None:
            self.on_commit(len(jobs), time.perf_counter() - started)
        if len(jobs) > 1:
            self.stats.grouped_jobs += len(jobs)
        # Only now, after a durable COMMIT, do callers learn their result.
        for job in ok:
            self.stats.jobs += 1
            if not job.future.done():
                job.future.set_result(job.result)
        for job, error in failed:
            self._finish_failed(job, error)
        return []

    async def _run_savepointed(
        self, jobs: list[_Job]
    ) -> tuple[list[_Job], list[tuple[_Job, BaseException]]] | list[_Job]:
        """Run each job in its own SAVEPOINT; (ok, failed), or the jobs to retry if aborted."""
        conn = self._writer
        ok: list[_Job] = []
        failed: list[tuple[_Job, BaseException]] = []
        for index, job in enumerate(jobs):
            await conn.execute("SAVEPOINT job")
            try:
                job.result = await job.fn(conn)
            except Exception as e:
                if not conn.in_transaction:
                    # Some errors (disk full, I/O errors, ON CONFLICT ROLLBACK) make SQLite roll
                    # back the whole transaction, savepoints and all. This job keeps its error;
                    # the others lost their work through no fault of theirs, so run them again.
                    for bad, error in [*failed, (job, e)]:
                        self._finish_failed(bad, error)
                    retry = ok + jobs[index + 1 :]
                    self.stats.retried_jobs += len(retry)
                    return retry
                failed.append((job, e))
                await conn.execute("ROLLBACK TO job")
                await conn.execute("RELEASE job")
            else:
                await conn.execute("RELEASE job")
                ok.append(job)
        return ok, failed

    def _finish_failed(self, job: _Job, error: BaseException) -> None:
        self.stats.jobs += 1
        self.stats.failed_jobs += 1
        _fail(job, error)


def _fail(job: _Job, error: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(error)
