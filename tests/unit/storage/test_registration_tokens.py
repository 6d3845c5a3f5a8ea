"""The registration_tokens table functions, against a real migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage import registration as reg


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


async def test_insert_select_delete(storage: Storage) -> None:
    assert await storage.db.write(lambda c: reg.insert_registration_token(
        c, token="b", created_ts=2, uses_allowed=3, expiry_ts=100))
    assert await storage.db.write(lambda c: reg.insert_registration_token(c, token="a", created_ts=1))
    assert not await storage.db.write(lambda c: reg.insert_registration_token(c, token="a", created_ts=9))
    tokens = await storage.db.read(reg.select_registration_tokens)
    assert [t.token for t in tokens] == ["a", "b"]
    assert tokens[1] == reg.RegistrationToken("b", 3, 0, 100, 2)
    assert await storage.db.write(lambda c: reg.delete_registration_token(c, "a"))
    assert not await storage.db.write(lambda c: reg.delete_registration_token(c, "a"))
    assert await storage.db.read(lambda c: reg.select_registration_token(c, "a")) is None


async def test_use_counts_and_stops_at_limit_or_expiry(storage: Storage) -> None:
    await storage.db.write(lambda c: reg.insert_registration_token(
        c, token="t", created_ts=0, uses_allowed=2, expiry_ts=1000))
    use = lambda now: storage.db.write(lambda c: reg.use_registration_token(c, "t", now))  # noqa: E731
    assert await use(10) and await use(20)
    assert not await use(30)  # used up
    token = await storage.db.read(lambda c: reg.select_registration_token(c, "t"))
    assert token is not None and token.completed == 2 and not token.is_valid(30)
    await storage.db.write(lambda c: reg.insert_registration_token(c, token="u", created_ts=0, expiry_ts=1000))
    assert not await storage.db.write(lambda c: reg.use_registration_token(c, "u", 1000))  # expired
    assert await storage.db.write(lambda c: reg.use_registration_token(c, "u", 999))
    assert not await storage.db.write(lambda c: reg.use_registration_token(c, "missing", 0))
