"""The email_pushers tables (migration 0040): a new pusher starts at the newest event, a set
again keeps its position and token, positions never move back, the rooms' last mails, and
everything going with its pusher (deleted directly, by address, by unsubscribe token); the
migration keeps the rows written before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dendrite_lite.storage import Storage
from dendrite_lite.storage import email_pushers as table
from dendrite_lite.storage import pushers as pushers_table
from dendrite_lite.storage.pushers import Pusher
from tests.unit.storage.migration_helpers import then_apply, up_to

ALICE = "@alice:example.org"
ADDRESS = "alice@example.org"
KEY = ("m.email", ADDRESS, ALICE)


async def _set(storage: Storage, token: str) -> None:
    pusher = Pusher(ALICE, "m.email", ADDRESS, "email", "Email", ADDRESS, None, "en", {}, 1)

    async def txn(c):
        await pushers_table.upsert_pusher(c, pusher, append=False)
        await table.insert_email_pusher(c, ALICE, "m.email", ADDRESS, token)

    await storage.db.write(txn)


async def test_positions_rooms_and_deletion(storage: Storage) -> None:
    w = storage.db.write
    await _set(storage, "t1")
    [found] = await w(table.select_email_pushers)
    assert (found.key, found.last_stream_ordering, found.unsubscribe_token) == (KEY, 0, "t1")
    await w(lambda c: table.update_mailed(c, KEY, 7, ["!a", "!b"], 1000))
    await w(lambda c: table.update_position(c, KEY, 5))  # never back
    await _set(storage, "t2")  # set again: same position, same token
    [found] = await w(table.select_email_pushers)
    assert (found.last_stream_ordering, found.unsubscribe_token) == (7, "t1")
    assert await w(lambda c: table.select_room_last_sent(c, KEY)) == {"!a": 1000, "!b": 1000}
    assert await w(lambda c: table.delete_by_token(c, "t2")) is None
    assert await w(lambda c: table.delete_by_token(c, "t1")) == (ALICE, ADDRESS)
    assert await w(table.select_email_pushers) == []
    assert await w(lambda c: pushers_table.select_pushers(c, ALICE)) == []
    assert await w(lambda c: table.select_room_last_sent(c, KEY)) == {}
    # Mailed after the pusher went: nothing is written back.
    await w(lambda c: table.update_mailed(c, KEY, 9, ["!a"], 2000))
    assert await w(lambda c: table.select_room_last_sent(c, KEY)) == {}


async def test_the_address_or_the_account_takes_the_state_along(storage: Storage) -> None:
    w = storage.db.write
    await _set(storage, "t1")
    await w(lambda c: table.update_mailed(c, KEY, 3, ["!a"], 1))
    await w(lambda c: table.delete_address_pushers(c, ALICE, ADDRESS))
    assert await w(table.select_email_pushers) == []
    await _set(storage, "t3")
    await w(lambda c: pushers_table.delete_pushers(c, ALICE))  # deactivation
    assert await w(table.select_email_pushers) == []
    assert await w(lambda c: table.select_room_last_sent(c, KEY)) == {}


async def test_migration_keeps_existing_rows(tmp_path: Path) -> None:
    name = "0040_email_pushers.sql"
    path = await up_to(tmp_path, name)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name,"
        " device_display_name, lang, data, pushkey_ts) VALUES (?, 'a', 'k', 'http', 'A', 'D',"
        " 'en', '{}', 1)", (ALICE,),
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only=name) == [40]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id, kind FROM pushers").fetchall() == [(ALICE, "http")]
        assert conn.execute("SELECT COUNT(*) FROM email_pushers").fetchone() == (0,)
    finally:
        conn.close()
