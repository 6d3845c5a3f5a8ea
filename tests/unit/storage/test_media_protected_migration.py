"""Migration 0025 (media.protected, media.quarantined_by) keeps existing media rows, unprotected
and quarantined by nobody; and the admin queries over those columns (storage/media_admin.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from pathlib import Path

from dendrite_lite.storage import Storage
from dendrite_lite.storage import media_admin as table
from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0025_media_protected.sql"
_INSERT = (
    "INSERT INTO media (server_name, media_id, sha256, size, content_type, upload_name, user_id,"
    " created_ts, last_access_ts, quarantined) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
ROWS = [
    ("us", "a", "0" * 64, 300, "image/png", "b.png", "@a:us", 10, None, 0),
    ("us", "b", "1" * 64, 100, "text/plain", "a.txt", "@a:us", 30, 500, 0),
    (
        "us",
        "c",
        "1" * 64,
        200,
        "text/plain",
        None,
        "@a:us",
        20,
        None,
        1,
    ),  # same file as b
    (
        "them",
        "d",
        "1" * 64,
        100,
        "text/plain",
        None,
        None,
        5,
        None,
        0,
    ),  # a remote copy of it
]


async def test_rows_kept_unprotected(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.executemany(_INSERT, ROWS)
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path, only=NAME)) == [25]
    conn = sqlite3.connect(path)
    try:
        got = conn.execute(
            "SELECT media_id, quarantined, protected, quarantined_by FROM media ORDER BY media_id"
        ).fetchall()
    finally:
        conn.close()
    assert got == [
        ("a", 0, 0, None),
        ("b", 0, 0, None),
        ("c", 1, 0, None),
        ("d", 0, 0, None),
    ]


async def test_admin_queries(tmp_path: Path) -> None:
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    try:
        await s.db.write(lambda c: c.executemany(_INSERT, ROWS))

        async def user_page(
            order_by: str, backwards: bool, offset: int = 0, limit: int = 10
        ) -> list[str]:
            page, total = await s.db.read(
                lambda c: table.select_user_media(
                    c,
                    "@a:us",
                    order_by=order_by,
                    backwards=backwards,
                    offset=offset,
                    limit=limit,
                )
            )
            assert total == 3
            return [m.media_id for m in page]

        assert await user_page("created_ts", True) == ["b", "c", "a"]
        assert await user_page("media_length", False) == ["b", "c", "a"]
        assert await user_page("upload_name", False, offset=1, limit=1) == [
            "b"
        ]  # NULL first

        # Protected media is never quarantined; quarantine spreads to the file's other rows.
        assert await s.db.write(lambda c: table.update_protected(c, "us", "a", True))
        assert not await s.db.write(
            lambda c: table.update_quarantined(c, "us", "a", True, "@x:us")
        )
        assert await s.db.write(
            lambda c: table.update_quarantined(c, "us", "b", True, "@x:us")
        )
        info = await s.db.read(lambda c: table.select_admin_media(c, "them", "d"))
        assert info is not None and info.quarantined and info.quarantined_by == "@x:us"
        a = await s.db.read(lambda c: table.select_admin_media(c, "us", "a"))
        assert a is not None and a.protected and not a.quarantined
        # Unquarantining one row frees every row of the file.
        assert await s.db.write(lambda c: table.update_quarantined(c, "us", "b", False))
        rows = await s.db.read(
            lambda c: c.execute_fetchall("SELECT media_id FROM media WHERE quarantined")
        )
        assert rows == []

        # Old local uploads: protected ones and avatars stay unless keep_profiles is off.
        def old(keep_profiles: bool) -> Awaitable[list[str]]:
            return s.db.read(
                lambda c: table.select_local_media_ids_before(
                    c, "us", before_ts=1000, size_gt=150, keep_profiles=keep_profiles
                )
            )

        assert await old(True) == ["c"]  # a is protected, b is too small; d is not ours
        await s.db.write(
            lambda c: c.execute(
                "INSERT INTO accounts (user_id, is_admin, is_guest, created_ts, avatar_url)"
                " VALUES ('@a:us', 0, 0, 1, 'mxc://us/c')"
            )
        )
        assert await old(True) == []
        assert await old(False) == ["c"]
    finally:
        await s.close()
