"""A sqlite3 connection behind the async API the table modules use, running on the caller's thread.

Why: aiosqlite runs every call (execute, fetchall, close) as a job on the connection's own thread,
and each of those hops costs a queue put, a future, a wake-up of the event loop through its
self-pipe and two GIL hand-overs: 50-100 us when idle, milliseconds under load, while the
statements of a write transaction themselves take a few microseconds each. The writer
(storage.database) therefore runs its jobs' statements directly on the event loop thread through
this adapter; only what can block (BEGIN IMMEDIATE waiting for another process's lock, COMMIT and
its fsync) goes to a thread.

The table modules are written against aiosqlite's API (`await conn.execute(...)`,
`async with conn.execute(...) as cur`, `await cur.fetchall()`, `cur.rowcount`, ...): the adapter
offers the same calls, whose awaits complete without ever suspending, so a job's coroutine runs
start to end in one go unless it awaits something else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Generator, Iterable
from typing import Any

__all__ = ["InlineConnection", "InlineCursor"]


class InlineCursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size) if size is not None else self._cursor.fetchmany()

    async def close(self) -> None:
        self._cursor.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        for row in self._cursor:
            yield row

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def description(self) -> Any:
        return self._cursor.description


class _Done:
    """What `conn.execute(...)` returns: awaitable (the cursor) and an async context manager
    (closing the cursor), like aiosqlite's Result. The statement has already run."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: InlineCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, InlineCursor]:
        return self._cursor
        yield  # pragma: no cover - makes this a generator that never suspends

    async def __aenter__(self) -> InlineCursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


class InlineConnection:
    """The async facade over `raw`; every call runs at once on the calling thread."""

    __slots__ = ("raw",)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> _Done:
        return _Done(InlineCursor(self.raw.execute(sql, parameters)))

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Done:
        return _Done(InlineCursor(self.raw.executemany(sql, parameters)))

    async def execute_fetchall(self, sql: str, parameters: Iterable[Any] = ()) -> list[Any]:
        return self.raw.execute(sql, parameters).fetchall()

    def executescript(self, script: str) -> _Done:
        return _Done(InlineCursor(self.raw.executescript(script)))

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @property
    def total_changes(self) -> int:
        return self.raw.total_changes

    @property
    def row_factory(self) -> Any:
        return self.raw.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self.raw.row_factory = factory
