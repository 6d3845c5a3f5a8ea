"""The 3PID tables (migration 0037): validation sessions found by their key and by sid and
secret until they expire, validation kept at its first time; one account per address, the
owner's own address again accepted, removal of one or all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dendrite_lite.storage import Storage
from dendrite_lite.storage import threepids as table
from dendrite_lite.storage.threepids import UserThreepid, ValidationSession
from tests.unit.storage.migration_helpers import then_apply, up_to

ALICE, BOB = "@alice:example.org", "@bob:example.org"


def _session(sid: str, *, created: int = 1000, expires: int = 5000, secret: str = "s3cret",
             purpose: str = "register") -> ValidationSession:
    return ValidationSession(
        sid, secret, "email", "a@example.org", purpose, 1, None, created, None, expires
    )


async def test_sessions_by_key_and_by_sid_until_they_expire(storage: Storage) -> None:
    w = storage.db.write
    await w(lambda c: table.insert_validation_session(c, _session("one"), "hash1"))
    found = await w(lambda c: table.select_validation_session_by_key(
        c, "email", "a@example.org", "s3cret", "register", 2000))
    assert found == _session("one")
    for purpose, secret in (("password", "s3cret"), ("register", "other")):
        assert await w(lambda c, secret=secret, purpose=purpose: table.select_validation_session_by_key(
            c, "email", "a@example.org", secret, purpose, 2000)) is None
    assert await w(lambda c: table.select_validation_session(c, "one", "s3cret", 4999)) is not None
    assert await w(lambda c: table.select_validation_session(c, "one", "wrong", 2000)) is None
    assert await w(lambda c: table.select_validation_session(c, "one", "s3cret", 5000)) is None
    assert await w(lambda c: table.select_validation_token_hash(c, "one")) == "hash1"

    await w(lambda c: table.update_validation_resent(c, "one", "hash2", 2, "https://x/"))
    await w(lambda c: table.update_validation_validated(c, "one", 3000))
    await w(lambda c: table.update_validation_validated(c, "one", 3500))  # first time kept
    got = await w(lambda c: table.select_validation_session(c, "one", "s3cret", 3600))
    assert got is not None
    assert (got.send_attempt, got.next_link, got.validated_ts) == (2, "https://x/", 3000)
    assert await w(lambda c: table.select_validation_token_hash(c, "one")) == "hash2"

    # A new session sweeps the expired ones away.
    await w(lambda c: table.insert_validation_session(
        c, _session("two", created=6000, expires=9000, secret="x"), "h"))
    assert await w(lambda c: table.select_validation_token_hash(c, "one")) is None
    await w(lambda c: table.delete_validation_session(c, "two"))
    assert await w(lambda c: table.select_validation_token_hash(c, "two")) is None


async def test_one_account_per_address(storage: Storage) -> None:
    w = storage.db.write
    assert await w(lambda c: table.insert_user_threepid(
        c, ALICE, "email", "a@example.org", validated_at=10, added_at=20))
    assert not await w(lambda c: table.insert_user_threepid(
        c, BOB, "email", "a@example.org", validated_at=11, added_at=21))
    assert await w(lambda c: table.insert_user_threepid(
        c, ALICE, "email", "a@example.org", validated_at=12, added_at=22))
    assert await w(lambda c: table.insert_user_threepid(
        c, ALICE, "email", "b@example.org", validated_at=30, added_at=40))
    assert await w(lambda c: table.select_user_id_for_threepid(c, "email", "a@example.org")) == ALICE
    assert await w(lambda c: table.select_user_id_for_threepid(c, "msisdn", "a@example.org")) is None
    mine = await w(lambda c: table.select_user_threepids(c, ALICE))
    assert mine == [
        UserThreepid(ALICE, "email", "a@example.org", 10, 20),
        UserThreepid(ALICE, "email", "b@example.org", 30, 40),
    ]
    assert mine[0].to_json() == {
        "medium": "email", "address": "a@example.org", "validated_at": 10, "added_at": 20
    }
    assert await w(lambda c: table.select_user_threepids(c, BOB)) == []

    assert not await w(lambda c: table.delete_user_threepid(c, BOB, "email", "a@example.org"))
    assert await w(lambda c: table.delete_user_threepid(c, ALICE, "email", "a@example.org"))
    assert await w(lambda c: table.insert_user_threepid(
        c, BOB, "email", "a@example.org", validated_at=50, added_at=60))
    removed = await w(lambda c: table.delete_all_user_threepids(c, ALICE))
    assert removed == [UserThreepid(ALICE, "email", "b@example.org", 30, 40)]
    assert await w(lambda c: table.select_user_threepids(c, ALICE)) == []
    assert await w(lambda c: table.select_user_id_for_threepid(c, "email", "a@example.org")) == BOB


async def test_migration_keeps_existing_accounts(tmp_path: Path) -> None:
    path = await up_to(tmp_path, "0037_threepids.sql")
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO accounts (user_id, password_hash, created_ts) VALUES (?, 'h', 1)", (ALICE,)
    )
    conn.commit()
    conn.close()
    assert await then_apply(tmp_path, only="0037_threepids.sql") == [37]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id FROM accounts").fetchall() == [(ALICE,)]
        assert conn.execute("SELECT COUNT(*) FROM user_threepids").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM threepid_validation_sessions").fetchone() == (0,)
    finally:
        conn.close()
