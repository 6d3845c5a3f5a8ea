"""Password hashing: argon2id (argon2-cffi), stored as a PHC string ("$argon2id$v=19$m=...").

argon2 is slow and memory-hard on purpose, so the async wrappers run it in a worker thread, and
at most _MAX_CONCURRENT hashes run at once: each takes 9 MiB with our parameters, and a
burst of logins must not push a 1 GB machine into swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import unicodedata
from collections.abc import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "hash_password",
    "verify_password",
    "needs_rehash",
    "hash_password_async",
    "verify_password_async",
    "fast_hashing_for_tests",
]

# One of OWASP's equivalent argon2id profiles (m=9 MiB, t=4, p=1; the cheat sheet lists m=19 MiB
# t=2 and m=9 MiB t=4 as the same strength), not argon2-cffi's default (RFC 9106 "low memory":
# m=64 MiB, t=3, p=4). Measured on the 2-core test machine: 24 ms a hash for m=9/t=4, 28 ms for
# m=19/t=2, 204 ms for the default. Memory decided it: two hashes at once add ~18 MiB to the
# server's peak RSS instead of ~38 MiB (m=19) or ~128 MiB (the default), and registration bursts
# set a Raspberry Pi appliance's peak (bench/chat.py). Hashes made with other parameters are
# upgraded at next login.
_HASHER = PasswordHasher(time_cost=4, memory_cost=9 * 1024, parallelism=1)
_MAX_CONCURRENT = 2
_SLOTS = threading.BoundedSemaphore(_MAX_CONCURRENT)


_DUMMY_HASHES: dict[int, str] = {}


def _dummy_hash() -> str:
    """Verified against when the account does not exist, so a failed login takes as long either
    way and response times do not reveal which user ids exist. Made on first use (per hasher),
    not at import: a hash costs ~0.25 s, which every CLI command would otherwise pay at start."""
    key = id(_HASHER)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = _HASHER.hash("dendrite-lite: no such account")
    return _DUMMY_HASHES[key]


def _normalize(password: str) -> str:
    # The same password typed on different systems can arrive in different Unicode forms
    # (macOS keyboards produce decomposed accents); NFKC makes them one password.
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    with _SLOTS:
        return _HASHER.hash(_normalize(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if password matches; False for a mismatch, a malformed hash, or no hash at all."""
    with _SLOTS:
        try:
            return _HASHER.verify(password_hash or _dummy_hash(), _normalize(password)) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(password_hash: str) -> bool:
    """True if the hash was made with other parameters than ours (re-hash at next login)."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


@contextlib.contextmanager
def fast_hashing_for_tests() -> Iterator[None]:
    """TEST ONLY: hash with the cheapest argon2id parameters until the block exits.

    A test suite that registers hundreds of users would otherwise spend minutes in argon2. This
    is deliberately a Python-level hook and not a config key, so no self-hoster can weaken their
    password hashes by accident. Hashes made inside verify outside (the parameters live in each
    hash) but count as outdated there, exactly like any hash made with other parameters.
    """
    global _HASHER
    saved = _HASHER
    # Not argon2-cffi's minimum (m=8, p=1), so tests that build "outdated" hashes with the
    # minimum still see them as outdated.
    _HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    try:
        yield
    finally:
        _DUMMY_HASHES.pop(id(_HASHER), None)
        _HASHER = saved
