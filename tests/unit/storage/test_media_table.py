"""The media and media_thumbnails tables (migration 0020): pending ids, completion once,
shared files counted before deletion; the migration keeps existing rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import media as table
from dendrite_lite.storage.media import MediaRow, ThumbnailRow
from tests.unit.storage.migration_helpers import then_apply, up_to

NAME = "0020_media.sql"
ME = "example.org"
ALICE = "@alice:example.org"
SHA_A = "a" * 64
SHA_B = "b" * 64


def _row(media_id: str, sha256: str, server_name: str = ME) -> MediaRow:
    return MediaRow(
        server_name=server_name, media_id=media_id, sha256=sha256, size=3, content_type="text/plain",
        upload_name="a.txt", user_id=ALICE, created_ts=1,
    )


async def test_pending_ids_are_limited_completed_once_and_expire(storage: Storage) -> None:
    async def create(conn: aiosqlite.Connection, media_id: str, now: int, expires: int) -> int:
        await table.insert_pending_media(conn, ME, media_id, ALICE, now, expires, True)
        return await table.count_pending_media(conn, ALICE, now)

    assert await storage.db.write(lambda c: create(c, "p1", 100, 200)) == 1
    assert await storage.db.write(lambda c: create(c, "p2", 150, 1000)) == 2
    # At 300, p1 has expired: it no longer counts, and making p3 deletes it.
    assert await storage.db.write(lambda c: create(c, "p3", 300, 1000)) == 2
    assert await storage.db.read(lambda c: table.select_media(c, ME, "p1")) is None
    pending = await storage.db.read(lambda c: table.select_media(c, ME, "p2"))
    assert pending is not None and pending.pending and pending.authenticated

    def complete(conn: aiosqlite.Connection) -> object:
        return table.complete_pending_media(conn, ME, "p2", SHA_A, 3, "text/plain", "a.txt")

    assert await storage.db.write(complete) is True
    assert await storage.db.write(complete) is False  # not pending any more
    done = await storage.db.read(lambda c: table.select_media(c, ME, "p2"))
    assert done is not None and (done.sha256, done.size, done.expires_ts) == (SHA_A, 3, None)


async def test_delete_returns_only_files_nothing_else_uses(storage: Storage) -> None:
    thumb = ThumbnailRow(32, 32, "crop", False, SHA_B, 10, "image/png")

    async def setup(conn: aiosqlite.Connection) -> None:
        await table.insert_media(conn, _row("one", SHA_A))
        await table.insert_media(conn, _row("two", SHA_A))  # the same content, stored once
        await table.insert_media(conn, _row("remote", SHA_A, "other.org"))
        await table.insert_thumbnail(conn, ME, "one", thumb)

    await storage.db.write(setup)
    assert await storage.db.read(lambda c: table.count_sha256_refs(c, SHA_A)) == 3
    assert await storage.db.read(lambda c: table.select_thumbnails(c, ME, "one")) == [thumb]
    # SHA_A is still used by "two" and the remote copy; the thumbnail's file is free.
    assert await storage.db.write(lambda c: table.delete_media(c, ME, "one")) == [SHA_B]
    assert await storage.db.write(lambda c: table.delete_media(c, ME, "two")) == []
    assert await storage.db.write(lambda c: table.delete_media(c, "other.org", "remote")) == [SHA_A]
    assert await storage.db.read(lambda c: table.count_sha256_refs(c, SHA_A)) == 0


async def test_migration_keeps_existing_rows(tmp_path: Path) -> None:
    path = await up_to(tmp_path, NAME)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO accounts (user_id, created_ts) VALUES (?, 0)", (ALICE,))
    conn.commit()
    conn.close()
    assert (await then_apply(tmp_path))[0] == 20
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT user_id FROM accounts").fetchall() == [(ALICE,)]
        assert conn.execute("SELECT COUNT(*) FROM media").fetchone() == (0,)
    finally:
        conn.close()
