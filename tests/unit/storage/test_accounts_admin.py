"""storage/accounts_admin.py: the admin API's user listing (filters, order, paging) and one
user with its erasure and last use, against a real migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as acc
from dendrite_lite.storage import accounts_admin as admin
from dendrite_lite.storage import devices as dev
from dendrite_lite.storage.accounts_admin import UserFilter

# A server name with a port: its ':' must not let a name search reach into it.
HS = "hs.example:8448"
USERS = [  # (user_id, created_ts, displayname, is_admin, is_guest)
    (f"@carol:{HS}", 3, "Zed", False, False),
    (f"@alice:{HS}", 2, "Alice A", True, False),
    (f"@bob_1:{HS}", 1, None, False, True),
    (f"@dave:{HS}", 4, "bob", False, False),
]


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)

    async def fill(conn: aiosqlite.Connection) -> None:
        for user_id, created, name, is_admin, is_guest in USERS:
            await acc.insert_account(
                conn,
                user_id=user_id,
                password_hash=None,
                created_ts=created,
                is_admin=is_admin,
                is_guest=is_guest,
                displayname=name,
            )
        await dev.insert_device(
            conn, user_id=f"@alice:{HS}", device_id="A1", created_ts=10
        )
        await dev.insert_device(
            conn, user_id=f"@alice:{HS}", device_id="A2", created_ts=30
        )
        await acc.update_account_deactivated(conn, f"@dave:{HS}", True)
        await acc.insert_erased_user(conn, f"@dave:{HS}")
        await acc.update_user_type(conn, f"@carol:{HS}", "bot")

    await s.db.write(fill)
    yield s
    await s.close()


async def _names(
    storage: Storage, f: UserFilter, **kw: object
) -> tuple[list[str], int]:
    users, total = await storage.db.read(lambda c: admin.select_admin_users(c, f, **kw))  # type: ignore[arg-type]
    return [u.account.user_id.split(":")[0] for u in users], total


async def test_filters(storage: Storage) -> None:
    assert await _names(storage, UserFilter()) == (["@alice", "@bob_1", "@carol"], 3)
    assert await _names(storage, UserFilter(deactivated=None)) == (
        ["@alice", "@bob_1", "@carol", "@dave"],
        4,
    )
    assert await _names(storage, UserFilter(deactivated=True)) == (["@dave"], 1)
    assert await _names(storage, UserFilter(guests=False)) == (["@alice", "@carol"], 2)
    assert await _names(storage, UserFilter(admins=True)) == (["@alice"], 1)
    assert await _names(storage, UserFilter(admins=False)) == (["@bob_1", "@carol"], 2)
    assert await _names(storage, UserFilter(not_user_types=("bot",))) == (
        ["@alice", "@bob_1"],
        2,
    )
    assert await _names(storage, UserFilter(not_user_types=("",))) == (["@carol"], 1)


async def test_name_searches_localpart_and_display_name_only(storage: Storage) -> None:
    everyone = {"deactivated": None}
    # "bob" is bob_1's localpart and dave's display name.
    assert await _names(storage, UserFilter(name="BOB", **everyone)) == (
        ["@bob_1", "@dave"],
        2,
    )
    assert await _names(storage, UserFilter(name="8448", **everyone)) == ([], 0)
    assert await _names(storage, UserFilter(name="example", **everyone)) == ([], 0)
    # LIKE's wildcards are plain characters: "_" is not "any one character".
    assert await _names(storage, UserFilter(name="b_b", **everyone)) == ([], 0)
    assert await _names(storage, UserFilter(name="b_1", **everyone)) == (["@bob_1"], 1)
    # user_id searches the whole id, server name included.
    assert (await _names(storage, UserFilter(user_id="8448")))[1] == 3


async def test_order_and_paging(storage: Storage) -> None:
    f = UserFilter(deactivated=None)
    assert await _names(storage, f, order_by="creation_ts") == (
        ["@bob_1", "@alice", "@carol", "@dave"],
        4,
    )
    assert (await _names(storage, f, order_by="creation_ts", backwards=True))[0] == [
        "@dave",
        "@carol",
        "@alice",
        "@bob_1",
    ]
    # Display names sort as SQLite compares them (upper case first); no name sorts first.
    assert (await _names(storage, f, order_by="displayname"))[0] == [
        "@bob_1",
        "@alice",
        "@carol",
        "@dave",
    ]
    assert await _names(storage, f, offset=1, limit=2) == (["@bob_1", "@carol"], 4)
    assert await _names(storage, f, offset=9) == ([], 4)


async def test_one_user_with_erasure_and_last_use(storage: Storage) -> None:
    await storage.db.write(
        lambda c: dev.update_device_last_seen(c, f"@alice:{HS}", "A1", ts=50, ip="::1")
    )
    alice = await storage.db.read(lambda c: admin.select_admin_user(c, f"@alice:{HS}"))
    assert alice is not None
    assert (alice.account.is_admin, alice.erased, alice.last_seen_ts) == (
        True,
        False,
        50,
    )
    dave = await storage.db.read(lambda c: admin.select_admin_user(c, f"@dave:{HS}"))
    assert dave is not None and dave.erased and dave.last_seen_ts is None
    assert (
        await storage.db.read(lambda c: admin.select_admin_user(c, "@nobody:x")) is None
    )
