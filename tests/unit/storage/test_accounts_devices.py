"""The accounts, devices and access_tokens table functions, against a real migrated database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as acc
from dendrite_lite.storage import devices as dev

ALICE = "@alice:example.org"
BOB = "@bob:example.org"


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    for user_id in (ALICE, BOB):
        await s.db.write(
            lambda conn, u=user_id: acc.insert_account(
                conn, user_id=u, password_hash="$argon2id$x", created_ts=1000
            )
        )
    yield s
    await s.close()


async def _read(storage: Storage, fn, *args, **kwargs):
    return await storage.db.read(lambda conn: fn(conn, *args, **kwargs))


async def _write(storage: Storage, fn, *args, **kwargs):
    return await storage.db.write(lambda conn: fn(conn, *args, **kwargs))


async def test_account_roundtrip_and_updates(storage: Storage) -> None:
    account = await _read(storage, acc.select_account, ALICE)
    assert account == acc.Account(
        user_id=ALICE,
        password_hash="$argon2id$x",
        is_admin=False,
        is_guest=False,
        deactivated=False,
        created_ts=1000,
        displayname=None,
        avatar_url=None,
    )
    with pytest.raises(AttributeError):
        account.is_admin = True  # type: ignore[misc]  # frozen
    assert await _read(storage, acc.select_account, "@nobody:example.org") is None
    # A second insert of the same id changes nothing and says so.
    assert not await _write(
        storage, acc.insert_account, user_id=ALICE, password_hash=None, created_ts=5, is_admin=True
    )
    assert await _write(storage, acc.update_account_admin, ALICE, True)
    assert await _write(storage, acc.update_account_deactivated, ALICE, True)
    assert await _write(storage, acc.update_displayname, ALICE, "Alice")
    assert await _write(storage, acc.update_avatar_url, ALICE, "mxc://example.org/abc")
    assert await _write(storage, acc.update_password_hash, ALICE, None)
    assert not await _write(storage, acc.update_displayname, "@nobody:example.org", "x")
    account = await _read(storage, acc.select_account, ALICE)
    assert (account.is_admin, account.deactivated, account.displayname, account.avatar_url) == (
        True,
        True,
        "Alice",
        "mxc://example.org/abc",
    )
    assert account.password_hash is None and account.created_ts == 1000


async def test_account_count_and_listing(storage: Storage) -> None:
    await _write(
        storage, acc.insert_account, user_id="@guest1:example.org", password_hash=None,
        created_ts=1, is_guest=True,
    )
    assert await _read(storage, acc.select_account_count) == 2  # guests not counted
    assert await _read(storage, acc.select_user_ids) == [ALICE, BOB, "@guest1:example.org"]
    assert await _read(storage, acc.select_user_ids, limit=1, offset=1) == [BOB]


async def test_devices(storage: Storage) -> None:
    assert await _write(
        storage, dev.insert_device, user_id=ALICE, device_id="PHONE", created_ts=10,
        display_name="Phone", ip="192.0.2.1",
    )
    assert not await _write(
        storage, dev.insert_device, user_id=ALICE, device_id="PHONE", created_ts=99
    )
    await _write(storage, dev.insert_device, user_id=ALICE, device_id="LAPTOP", created_ts=20)
    await _write(storage, dev.insert_device, user_id=BOB, device_id="PHONE", created_ts=30)
    phone = await _read(storage, dev.select_device, ALICE, "PHONE")
    assert phone == dev.Device(ALICE, "PHONE", "Phone", 10, "192.0.2.1", 10)
    assert [d.device_id for d in await _read(storage, dev.select_devices, ALICE)] == [
        "LAPTOP",
        "PHONE",
    ]
    assert await _write(storage, dev.update_device_display_name, ALICE, "LAPTOP", "Work")
    assert await _write(storage, dev.update_device_last_seen, ALICE, "LAPTOP", ts=50, ip="::1")
    laptop = await _read(storage, dev.select_device, ALICE, "LAPTOP")
    assert (laptop.display_name, laptop.last_seen_ts, laptop.last_seen_ip) == ("Work", 50, "::1")
    assert await _write(storage, dev.delete_device, ALICE, "LAPTOP")
    assert not await _write(storage, dev.delete_device, ALICE, "LAPTOP")
    assert await _read(storage, dev.select_device, ALICE, "LAPTOP") is None
    # Bob's device with the same id is a different device.
    assert await _read(storage, dev.select_device, BOB, "PHONE") is not None


async def test_device_needs_an_account(storage: Storage) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await _write(
            storage, dev.insert_device, user_id="@ghost:example.org", device_id="D", created_ts=1
        )


async def _device_with_token(storage: Storage, user_id: str, device_id: str, token: str) -> str:
    token_hash = dev.hash_token(token)

    async def fn(conn):
        await dev.insert_device(conn, user_id=user_id, device_id=device_id, created_ts=1)
        await dev.insert_access_token(
            conn, token_hash=token_hash, user_id=user_id, device_id=device_id, created_ts=2
        )

    await storage.db.write(fn)
    return token_hash


def test_hash_token_is_sha256_hex() -> None:
    # sha256("abc") from FIPS 180-2.
    assert dev.hash_token("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


async def test_token_stored_hashed_and_selected(storage: Storage, tmp_path: Path) -> None:
    token_hash = await _device_with_token(storage, ALICE, "PHONE", "syt_secret_token")
    token = await _read(storage, dev.select_token, token_hash)
    assert token == dev.AccessToken(
        token_hash=token_hash,
        user_id=ALICE,
        device_id="PHONE",
        created_ts=2,
        expires_ts=None,
        refresh_token_hash=None,
        refresh_expires_ts=None,
        previous_token_hash=None,
        soft_logged_out=False,
        last_used_ts=None,
    )
    assert not token.is_expired(10**15)
    assert await _read(storage, dev.select_token, dev.hash_token("other")) is None
    assert await _write(storage, dev.update_token_last_used, token_hash, 77)
    assert (await _read(storage, dev.select_token, token_hash)).last_used_ts == 77
    # The raw token is nowhere in the file.
    await storage.close()
    for f in tmp_path.iterdir():
        assert b"syt_secret_token" not in f.read_bytes()
    # (the fixture's close() after ours is a no-op)


async def test_token_needs_a_device(storage: Storage) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await _write(
            storage, dev.insert_access_token, token_hash="h", user_id=ALICE, device_id="NONE",
            created_ts=1,
        )


async def test_deleting_device_revokes_its_tokens(storage: Storage) -> None:
    phone = await _device_with_token(storage, ALICE, "PHONE", "t1")
    laptop = await _device_with_token(storage, ALICE, "LAPTOP", "t2")
    assert await _write(storage, dev.delete_device, ALICE, "PHONE")
    assert await _read(storage, dev.select_token, phone) is None
    assert await _read(storage, dev.select_token, laptop) is not None


async def test_logout_variants(storage: Storage) -> None:
    a1 = await _device_with_token(storage, ALICE, "A1", "a1")
    a2 = await _device_with_token(storage, ALICE, "A2", "a2")
    a3 = await _device_with_token(storage, ALICE, "A3", "a3")
    b1 = await _device_with_token(storage, BOB, "B1", "b1")
    # logout: one token
    assert await _write(storage, dev.delete_token, a1)
    assert not await _write(storage, dev.delete_token, a1)
    # a device's tokens
    assert await _write(storage, dev.delete_tokens_for_device, ALICE, "A2") == 1
    assert await _read(storage, dev.select_token, a2) is None
    assert await _read(storage, dev.select_device, ALICE, "A2") is not None
    # password change: every token but the caller's
    a4 = await _device_with_token(storage, ALICE, "A4", "a4")
    assert await _write(storage, dev.delete_tokens_for_user, ALICE, except_token_hash=a4) == 1
    assert await _read(storage, dev.select_token, a3) is None
    assert await _read(storage, dev.select_token, a4) is not None
    # logout/all: every device (and so every token) of the user
    assert await _write(storage, dev.delete_devices_for_user, ALICE) == 4
    assert await _read(storage, dev.select_token, a4) is None
    assert await _read(storage, dev.select_devices, ALICE) == []
    assert await _read(storage, dev.select_token, b1) is not None


async def test_delete_devices_except_one(storage: Storage) -> None:
    await _device_with_token(storage, ALICE, "KEEP", "k")
    await _device_with_token(storage, ALICE, "DROP", "d")
    assert await _write(storage, dev.delete_devices_for_user, ALICE, except_device_id="KEEP") == 1
    assert [d.device_id for d in await _read(storage, dev.select_devices, ALICE)] == ["KEEP"]


async def test_refresh_rotation(storage: Storage) -> None:
    old_access = dev.hash_token("access-1")
    old_refresh = dev.hash_token("refresh-1")
    new_access = dev.hash_token("access-2")
    new_refresh = dev.hash_token("refresh-2")

    async def login(conn):
        await dev.insert_device(conn, user_id=ALICE, device_id="D", created_ts=1)
        await dev.insert_access_token(
            conn, token_hash=old_access, user_id=ALICE, device_id="D", created_ts=1,
            expires_ts=100, refresh_token_hash=old_refresh,
        )

    await storage.db.write(login)
    found = await _read(storage, dev.select_token_by_refresh_hash, old_refresh)
    assert found is not None and found.token_hash == old_access and found.expires_ts == 100
    assert found.is_expired(100) and not found.is_expired(99)
    await _write(
        storage, dev.insert_access_token, token_hash=new_access, user_id=ALICE, device_id="D",
        created_ts=2, expires_ts=200, refresh_token_hash=new_refresh,
        previous_token_hash=old_access,
    )
    # Until the new pair is used, the old refresh token still works.
    assert await _read(storage, dev.select_token_by_refresh_hash, old_refresh) is not None
    assert await _write(storage, dev.delete_replaced_token, new_access)
    assert await _read(storage, dev.select_token_by_refresh_hash, old_refresh) is None
    assert (await _read(storage, dev.select_token, new_access)).previous_token_hash is None
    assert not await _write(storage, dev.delete_replaced_token, new_access)  # only once
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await _write(
            storage, dev.insert_access_token, token_hash="x", user_id=ALICE, device_id="D",
            created_ts=3, refresh_token_hash=new_refresh,
        )


async def test_soft_logout(storage: Storage) -> None:
    t1 = await _device_with_token(storage, ALICE, "D1", "s1")
    t2 = await _device_with_token(storage, ALICE, "D2", "s2")
    tb = await _device_with_token(storage, BOB, "D1", "sb")
    assert await _write(storage, dev.update_tokens_soft_logged_out, ALICE, "D1") == 1
    assert (await _read(storage, dev.select_token, t1)).soft_logged_out
    assert not (await _read(storage, dev.select_token, t2)).soft_logged_out
    assert await _write(storage, dev.update_tokens_soft_logged_out, ALICE) == 2
    assert (await _read(storage, dev.select_token, t2)).soft_logged_out
    assert not (await _read(storage, dev.select_token, tb)).soft_logged_out
