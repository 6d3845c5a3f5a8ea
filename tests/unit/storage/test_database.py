"""Database: pragmas, group commit, savepoint isolation, read pool, draining close."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from dendrite_lite.storage.database import Database, DatabaseClosed


async def _create_table(db: Database) -> None:
    async def fn(conn: aiosqlite.Connection) -> None:
        await conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")

    await db.write(fn)


def _insert(k: str, v: int):
    async def fn(conn: aiosqlite.Connection) -> str:
        await conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (k, v))
        return k

    return fn


async def _rows(db: Database) -> dict[str, int]:
    async def fn(conn: aiosqlite.Connection) -> dict[str, int]:
        async with conn.execute("SELECT k, v FROM kv") as cur:
            return {row[0]: row[1] for row in await cur.fetchall()}

    return await db.read(fn)


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database.open(tmp_path / "test.db", readers=3)
    await _create_table(database)
    yield database
    await database.close()


async def _pragma(conn: aiosqlite.Connection, name: str):
    async with conn.execute(f"PRAGMA {name}") as cur:
        row = await cur.fetchone()
    return row[0]


async def test_pragmas_on_writer_and_readers(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "p.db", synchronous="NORMAL", readers=2)
    try:
        async def check(conn: aiosqlite.Connection):
            return (
                await _pragma(conn, "journal_mode"),
                await _pragma(conn, "synchronous"),
                await _pragma(conn, "foreign_keys"),
                await _pragma(conn, "busy_timeout"),
            )

        # synchronous: 0=OFF 1=NORMAL 2=FULL 3=EXTRA
        assert await db.write(check) == ("wal", 1, 1, 10_000)
        assert await db.read(check) == ("wal", 1, 1, 10_000)
    finally:
        await db.close()


async def test_synchronous_defaults_to_full(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "f.db")
    try:
        assert await db.write(lambda conn: _pragma(conn, "synchronous")) == 2
    finally:
        await db.close()


async def test_bad_synchronous_value_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        await Database.open(tmp_path / "x.db", synchronous="fast; DROP TABLE x")


async def test_write_returns_result_and_commits(db: Database) -> None:
    assert await db.write(_insert("a", 1)) == "a"
    # A separate connection (another process, in effect) sees the committed row.
    raw = sqlite3.connect(db.path)
    try:
        assert raw.execute("SELECT v FROM kv WHERE k = 'a'").fetchall() == [(1,)]
    finally:
        raw.close()


async def test_burst_of_writes_is_grouped(db: Database) -> None:
    before = db.stats.commits
    results = await asyncio.gather(*(db.write(_insert(f"k{i}", i)) for i in range(200)))
    assert results == [f"k{i}" for i in range(200)]
    commits = db.stats.commits - before
    assert 1 <= commits <= 10, commits
    assert db.stats.grouped_jobs >= 190
    assert db.stats.max_group > 1
    rows = await _rows(db)
    assert rows == {f"k{i}": i for i in range(200)}


async def test_grouping_can_be_disabled(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "nogroup.db", readers=1, max_group=1)
    try:
        await _create_table(db)
        await asyncio.gather(*(db.write(_insert(f"k{i}", i)) for i in range(20)))
        assert db.stats.commits == 21
        assert db.stats.max_group == 1
        assert db.stats.grouped_jobs == 0
    finally:
        await db.close()


async def test_failing_job_in_group_rolls_back_only_itself(db: Database) -> None:
    async def half_then_fail(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO kv (k, v) VALUES ('bad1', 1)")
        raise RuntimeError("boom")

    groups_before = db.stats.groups
    jobs = [db.write(_insert("ok1", 1)), db.write(half_then_fail), db.write(_insert("ok2", 2)),
            db.write(_insert("ok1", 99))]  # duplicate key: sqlite3.IntegrityError
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[0] == "ok1"
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "boom"
    assert results[2] == "ok2"
    assert isinstance(results[3], sqlite3.IntegrityError)
    # They really shared one transaction.
    assert db.stats.groups - groups_before == 1
    assert await _rows(db) == {"ok1": 1, "ok2": 2}


async def test_job_that_aborts_whole_transaction_does_not_lose_others(db: Database) -> None:
    # ON CONFLICT ROLLBACK makes SQLite abort the entire transaction, savepoints included.
    async def rollback_everything(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT OR ROLLBACK INTO kv (k, v) VALUES ('dup', 2)")

    await db.write(_insert("dup", 1))
    results = await asyncio.gather(
        db.write(_insert("before", 1)),
        db.write(rollback_everything),
        db.write(_insert("after", 3)),
        return_exceptions=True,
    )
    assert results[0] == "before"
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert results[2] == "after"
    assert db.stats.retried_jobs >= 1
    assert await _rows(db) == {"dup": 1, "before": 1, "after": 3}


async def test_reads_run_concurrently_on_the_pool(db: Database) -> None:
    await db.write(_insert("x", 1))
    inside = 0
    peak = 0
    release = asyncio.Event()

    async def slow_read(conn: aiosqlite.Connection) -> int:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await release.wait()
        async with conn.execute("SELECT v FROM kv WHERE k = 'x'") as cur:
            value = (await cur.fetchone())[0]
        inside -= 1
        return value

    tasks = [asyncio.create_task(db.read(slow_read)) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert peak == 3  # the pool has 3 readers; the other 2 reads wait for one
    release.set()
    assert await asyncio.gather(*tasks) == [1] * 5


async def test_read_is_one_snapshot_and_cannot_write(db: Database) -> None:
    await db.write(_insert("s", 1))
    first_read = asyncio.Event()
    written = asyncio.Event()

    async def two_reads(conn: aiosqlite.Connection) -> tuple[int, int]:
        async with conn.execute("SELECT v FROM kv WHERE k = 's'") as cur:
            a = (await cur.fetchone())[0]
        first_read.set()
        await written.wait()
        async with conn.execute("SELECT v FROM kv WHERE k = 's'") as cur:
            b = (await cur.fetchone())[0]
        return a, b

    async def update(conn: aiosqlite.Connection) -> None:
        await conn.execute("UPDATE kv SET v = 2 WHERE k = 's'")

    reader = asyncio.create_task(db.read(two_reads))
    await first_read.wait()
    await db.write(update)
    written.set()
    assert await reader == (1, 1)
    assert (await _rows(db))["s"] == 2

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.read(_insert("nope", 1))


async def test_close_drains_pending_writes(tmp_path: Path) -> None:
    path = tmp_path / "drain.db"
    db = await Database.open(path, readers=1)
    await _create_table(db)
    pending = [asyncio.create_task(db.write(_insert(f"d{i}", i))) for i in range(50)]
    await asyncio.sleep(0)  # the writes are queued, not yet committed
    await db.close()
    assert [t.result() for t in pending] == [f"d{i}" for i in range(50)]
    with pytest.raises(DatabaseClosed):
        await db.write(_insert("late", 1))
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT COUNT(*) FROM kv").fetchone() == (50,)
    finally:
        raw.close()


async def test_writer_survives_job_that_misuses_transaction(db: Database) -> None:
    async def commits_itself(conn: aiosqlite.Connection) -> None:
        await conn.execute("COMMIT")

    with pytest.raises(sqlite3.OperationalError):
        await db.write(commits_itself)
    assert await db.write(_insert("still", 1)) == "still"
    assert (await _rows(db))["still"] == 1


async def test_write_waits_for_another_process_lock_instead_of_failing(db: Database) -> None:
    # Another process (the create-account CLI next to the running server) holds the write lock.
    other = sqlite3.connect(db.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO kv (k, v) VALUES ('other', 1)")
    loop = asyncio.get_running_loop()
    release = loop.run_in_executor(None, lambda: (__import__("time").sleep(0.3),
                                                  other.execute("COMMIT")))
    started = loop.time()
    assert await db.write(_insert("mine", 2)) == "mine"
    assert loop.time() - started >= 0.25  # it waited (busy_timeout), it did not fail
    await release
    other.close()
    assert await _rows(db) == {"other": 1, "mine": 2}


async def test_nested_write_is_refused_not_deadlocked(db: Database) -> None:
    async def nested(conn: aiosqlite.Connection) -> str:
        return await db.write(_insert("inner", 1))

    with pytest.raises(RuntimeError, match="inside a write job"):
        await asyncio.wait_for(db.write(nested), timeout=5)
    assert await db.write(_insert("after", 2)) == "after"
    assert "inner" not in await _rows(db)


async def test_failing_read_returns_connection_to_pool(db: Database) -> None:
    async def bad(conn: aiosqlite.Connection) -> None:
        await conn.execute("SELECT * FROM no_such_table")

    for _ in range(5):  # more failures than readers: each must give its connection back
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            await asyncio.wait_for(db.read(bad), timeout=5)
    assert await _rows(db) == {}
