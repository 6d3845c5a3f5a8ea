"""Password hashing primitives."""

from __future__ import annotations

from argon2 import PasswordHasher

from dendrite_lite.users.passwords import (
    hash_password,
    hash_password_async,
    needs_rehash,
    verify_password,
    verify_password_async,
)


def test_hash_is_salted_argon2id() -> None:
    a, b = hash_password("secret"), hash_password("secret")
    assert a.startswith("$argon2id$v=19$") and b.startswith("$argon2id$v=19$")
    assert a != b  # a fresh salt each time
    assert verify_password(a, "secret") and verify_password(b, "secret")
    assert not verify_password(a, "Secret")
    assert not needs_rehash(a)


def test_verify_handles_missing_and_malformed_hashes() -> None:
    assert not verify_password(None, "")
    assert not verify_password("not a hash", "not a hash")
    assert needs_rehash("not a hash")
    assert needs_rehash(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x"))


async def test_async_wrappers() -> None:
    h = await hash_password_async("pw")
    assert await verify_password_async(h, "pw")
    assert not await verify_password_async(h, "px")
