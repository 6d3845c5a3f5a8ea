"""The dehydrated_devices table (migration 0017): one mark per user, replaced by an upsert, gone
with its device; the migration keeps existing devices."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from dendrite_lite.storage import Storage, devices
from dendrite_lite.storage import dehydrated_devices as table
from tests.unit.storage.migration_helpers import then_apply, up_to

ALICE = "@alice:example.org"
NAME = "0017_dehydrated_devices.sql"


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    await s.db.write(lambda conn: conn.execute(
        "INSERT INTO accounts (user_id, created_ts) VALUES (?, 0)", (ALICE,)
    ))
    yield s
    await s.close()


async def _add_device(conn: aiosqlite.Connection, device_id: str) -> None:
    await devices.insert_device(conn, user_id=ALICE, device_id=device_id, created_ts=0)


async def test_one_per_user_and_gone_with_its_device(storage: Storage) -> None:
    async def park(conn: aiosqlite.Connection, device_id: str, data: dict) -> None:
        await _add_device(conn, device_id)
        await table.upsert_dehydrated_device(conn, ALICE, device_id, data)

    await storage.db.write(lambda conn: park(conn, "OLD", {"algorithm": "a"}))
    await storage.db.write(lambda conn: park(conn, "NEW", {"algorithm": "b"}))
    found = await storage.db.read(lambda conn: table.select_dehydrated_device(conn, ALICE))
    assert found == table.DehydratedDevice("NEW", {"algorithm": "b"})
    await storage.db.write(lambda conn: devices.delete_device(conn, ALICE, "NEW"))
    assert await storage.db.read(lambda conn: table.select_dehydrated_device(conn, ALICE)) is None


async def test_a_mark_needs_its_device(storage: Storage) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await storage.db.write(
            lambda conn: table.upsert_dehydrated_device(conn, ALICE, "NONE", {"algorithm": "a"})
        )


async def test_migration_keeps_existing_devices(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO accounts (user_id, created_ts) VALUES (?, 0)", (ALICE,))
    conn.execute("INSERT INTO devices (user_id, device_id, created_ts) VALUES (?, 'D', 0)", (ALICE,))
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=NAME) == [17]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id, device_id FROM devices").fetchall() == [(ALICE, "D")]
        assert conn.execute("SELECT COUNT(*) FROM dehydrated_devices").fetchone() == (0,)
    finally:
        conn.close()
