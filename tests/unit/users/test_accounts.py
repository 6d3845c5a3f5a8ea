"""Accounts service: create_account, its errors, password checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage.accounts import update_password_hash
from dendrite_lite.users.accounts import (
    check_password,
    create_account,
    get_account,
    validate_user_id,
)


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


async def test_create_account_stores_argon2id_hash(storage: Storage) -> None:
    await create_account(storage, "@alice:example.org", "correct horse")
    account = await get_account(storage, "@alice:example.org")
    assert account is not None
    assert account.user_id == "@alice:example.org"
    assert account.password_hash is not None
    assert account.password_hash.startswith("$argon2id$")
    assert "correct horse" not in account.password_hash
    assert (account.is_admin, account.is_guest, account.deactivated) == (False, False, False)
    assert account.created_ts > 1_600_000_000_000
    assert await check_password(storage, "@alice:example.org", "correct horse")
    assert not await check_password(storage, "@alice:example.org", "wrong horse")
    assert not await check_password(storage, "@nobody:example.org", "correct horse")


async def test_admin_flag_and_passwordless_account(storage: Storage) -> None:
    await create_account(storage, "@root:example.org", "pw", admin=True)
    await create_account(storage, "@bot:example.org", None)
    root = await get_account(storage, "@root:example.org")
    bot = await get_account(storage, "@bot:example.org")
    assert root is not None and root.is_admin
    assert bot is not None and bot.password_hash is None and not bot.is_admin
    assert not await check_password(storage, "@bot:example.org", "")


async def test_duplicate_is_user_in_use(storage: Storage) -> None:
    await create_account(storage, "@bob:example.org", "one")
    with pytest.raises(MatrixError) as info:
        await create_account(storage, "@bob:example.org", "two", admin=True)
    assert info.value.errcode == Errcode.USER_IN_USE
    assert info.value.status == 400
    # The first account is untouched.
    assert await check_password(storage, "@bob:example.org", "one")
    bob = await get_account(storage, "@bob:example.org")
    assert bob is not None and not bob.is_admin


@pytest.mark.parametrize(
    "user_id",
    [
        "@Alice:example.org",  # upper case
        "@:example.org",  # empty localpart
        "@al ice:example.org",
        "@al*ce:example.org",
        "@élise:example.org",
        "alice:example.org",  # no sigil
        "@alice",  # no server
        "@alice:",
        "@" + "a" * 243 + ":example.org",  # 256 bytes
    ],
)
async def test_invalid_user_id_is_invalid_username(storage: Storage, user_id: str) -> None:
    with pytest.raises(MatrixError) as info:
        await create_account(storage, user_id, "pw")
    assert info.value.errcode == Errcode.INVALID_USERNAME
    assert await get_account(storage, user_id) is None


def test_valid_user_ids_accepted() -> None:
    for user_id in ["@a:x", "@a.b_c=d-e/f+g:example.org", "@0:[::1]:8448"]:
        validate_user_id(user_id)
    longest = "@" + "a" * (255 - len("@:example.org")) + ":example.org"
    assert len(longest) == 255
    validate_user_id(longest)


async def test_password_unicode_forms_are_one_password(storage: Storage) -> None:
    await create_account(storage, "@u:example.org", "caf\u00e9")  # precomposed é
    assert await check_password(storage, "@u:example.org", "cafe\u0301")  # e + combining accent


async def test_outdated_hash_is_upgraded_on_login(storage: Storage) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    await create_account(storage, "@old:example.org", None)
    await storage.db.write(lambda conn: update_password_hash(conn, "@old:example.org", weak))
    assert await check_password(storage, "@old:example.org", "pw")
    account = await get_account(storage, "@old:example.org")
    assert account is not None and account.password_hash != weak
    assert "m=9216,t=4,p=1" in account.password_hash
    assert await check_password(storage, "@old:example.org", "pw")


async def test_garbage_hash_never_verifies(storage: Storage) -> None:
    await create_account(storage, "@g:example.org", None)
    await storage.db.write(lambda conn: update_password_hash(conn, "@g:example.org", "plain"))
    assert not await check_password(storage, "@g:example.org", "plain")
