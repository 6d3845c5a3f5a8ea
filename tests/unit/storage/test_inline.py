"""storage.inline: aiosqlite's call shapes over a plain sqlite3 connection, without thread hops."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from dendrite_lite.storage.database import Database
from dendrite_lite.storage.inline import InlineConnection


@pytest.fixture
def conn() -> InlineConnection:
    raw = sqlite3.connect(":memory:", isolation_level=None)
    raw.row_factory = sqlite3.Row
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return InlineConnection(raw)


async def test_await_and_context_manager_forms(conn: InlineConnection) -> None:
    cur = await conn.execute("INSERT INTO t (v) VALUES (?)", ("a",))
    assert cur.lastrowid == 1 and cur.rowcount == 1
    await conn.executemany("INSERT INTO t (v) VALUES (?)", [("b",), ("c",)])
    async with conn.execute("SELECT id, v FROM t ORDER BY id") as cur:
        rows = await cur.fetchall()
    assert [(r["id"], r["v"]) for r in rows] == [(1, "a"), (2, "b"), (3, "c")]
    async with conn.execute("SELECT v FROM t WHERE id = ?", (2,)) as cur:
        assert (await cur.fetchone())[0] == "b"
        assert await cur.fetchone() is None
    cur = await conn.execute("SELECT v FROM t ORDER BY id")
    assert [r[0] async for r in cur] == ["a", "b", "c"]
    cur = await conn.execute("UPDATE t SET v = 'x' WHERE id > 1")
    assert cur.rowcount == 2


async def test_errors_raise_at_the_await(conn: InlineConnection) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await conn.execute("SELECT * FROM missing")
    with pytest.raises(sqlite3.IntegrityError):
        async with conn.execute("INSERT INTO t (id, v) VALUES (1, 'a'), (1, 'b')"):
            pass


async def test_transaction_flag_follows_the_connection(conn: InlineConnection) -> None:
    assert not conn.in_transaction
    await conn.execute("BEGIN")
    await conn.execute("INSERT INTO t (v) VALUES ('a')")
    assert conn.in_transaction
    await conn.execute("ROLLBACK")
    assert not conn.in_transaction


async def test_write_jobs_run_on_the_event_loop_thread(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "t.db", readers=1)
    try:
        async def job(c: InlineConnection) -> int:
            # The job's statements run where the job runs: no hop to another thread per call.
            c.raw.create_function("thread_id", 0, threading.get_ident)
            async with c.execute("SELECT thread_id()") as cur:
                return (await cur.fetchone())[0]

        assert await db.write(job) == threading.get_ident()  # type: ignore[arg-type]
    finally:
        await db.close()
