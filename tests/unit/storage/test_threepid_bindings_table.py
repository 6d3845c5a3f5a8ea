"""The threepid_bindings table (migration 0038): where each user bound each address through us,
read back per address and per user, a bind again keeping one row, removal of one binding; the
migration keeps the rows written before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dendrite_lite.storage import Storage
from dendrite_lite.storage import threepid_bindings as table
from dendrite_lite.storage.threepid_bindings import Binding
from tests.unit.storage.migration_helpers import then_apply, up_to

ALICE, BOB = "@alice:example.org", "@bob:example.org"


async def test_bindings_by_address_and_by_user(storage: Storage) -> None:
    w = storage.db.write
    await w(lambda c: table.insert_binding(c, Binding(ALICE, "email", "a@x.org", "is.one"), 10))
    await w(lambda c: table.insert_binding(c, Binding(ALICE, "email", "a@x.org", "is.two"), 20))
    await w(lambda c: table.insert_binding(c, Binding(ALICE, "msisdn", "4412345", "is.one"), 30))
    await w(lambda c: table.insert_binding(c, Binding(BOB, "email", "a@x.org", "is.one"), 40))
    # Bound again at the first server: still one row, now the newest.
    await w(lambda c: table.insert_binding(c, Binding(ALICE, "email", "a@x.org", "is.one"), 50))
    assert await w(lambda c: table.select_binding_servers(c, ALICE, "email", "a@x.org")) == ["is.two", "is.one"]
    assert await w(lambda c: table.select_binding_servers(c, ALICE, "email", "b@x.org")) == []
    assert await w(lambda c: table.select_user_bindings(c, ALICE)) == [
        Binding(ALICE, "email", "a@x.org", "is.two"),
        Binding(ALICE, "msisdn", "4412345", "is.one"),
        Binding(ALICE, "email", "a@x.org", "is.one"),
    ]
    await w(lambda c: table.delete_binding(c, Binding(ALICE, "email", "a@x.org", "is.two")))
    assert await w(lambda c: table.select_binding_servers(c, ALICE, "email", "a@x.org")) == ["is.one"]
    assert await w(lambda c: table.select_user_bindings(c, BOB)) == [Binding(BOB, "email", "a@x.org", "is.one")]


async def test_migration_keeps_existing_rows(tmp_path: Path) -> None:
    name = "0038_threepid_bindings.sql"
    path = await up_to(tmp_path, name)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO user_threepids (medium, address, user_id, validated_at, added_at)"
        " VALUES ('email', 'a@x.org', ?, 1, 2)", (ALICE,),
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=name) == [38]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id, address FROM user_threepids").fetchall() == [(ALICE, "a@x.org")]
        assert conn.execute("SELECT COUNT(*) FROM threepid_bindings").fetchone() == (0,)
    finally:
        conn.close()
