"""OpenID tokens expire after an hour, and the database holds only their hashes."""

from __future__ import annotations

import sqlite3

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.users.openid import TOKEN_LIFETIME_S, OpenIdService
from tests.unit.users.conftest import ALICE


async def test_tokens_expire_and_are_stored_hashed(storage: Storage) -> None:
    now = [1_000_000.0]
    svc = OpenIdService(storage, "example.org", clock=lambda: now[0])
    old = (await svc.request_token(ALICE, ALICE))["access_token"]
    now[0] += TOKEN_LIFETIME_S - 1
    assert await svc.userinfo(old) == {"sub": ALICE}
    fresh = (await svc.request_token(ALICE, ALICE))["access_token"]
    now[0] += 1
    with pytest.raises(MatrixError) as raised:
        await svc.userinfo(old)
    assert raised.value.errcode == "M_UNKNOWN_TOKEN"
    assert await svc.userinfo(fresh) == {"sub": ALICE}
    conn = sqlite3.connect(storage.db.path)
    try:
        stored = [r[0] for r in conn.execute("SELECT token FROM openid_tokens")]
    finally:
        conn.close()
    assert len(stored) == 2 and old not in stored and fresh not in stored
