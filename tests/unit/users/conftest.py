"""A fresh database with one account, @alice:example.org (password "secret"), hashed cheaply."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import create_account
from dendrite_lite.users.passwords import fast_hashing_for_tests

ALICE = "@alice:example.org"


@pytest.fixture
async def storage(tmp_path: Path):
    with fast_hashing_for_tests():
        s = await Storage.open(tmp_path / "homeserver.db", readers=2)
        await create_account(s, ALICE, "secret")
        yield s
        await s.close()
