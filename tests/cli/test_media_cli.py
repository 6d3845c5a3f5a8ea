"""`dendrite-lite media purge-remote|quarantine|unquarantine|delete|usage` against a real
database and media store: old cached remote media goes (files too, unless shared), recent
remote media and our own uploads stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from dendrite_lite.cli.main import app
from dendrite_lite.config import load_config
from dendrite_lite.media.repository import MediaRepository, MediaRow, now_ms
from dendrite_lite.media.store import FileStore
from dendrite_lite.storage import Storage
from tests.cli.test_registration_tokens_cli import write_config

runner = CliRunner()
DAY_MS = 24 * 3600 * 1000


def invoke(config_path: Path, *args: str):
    return runner.invoke(app, ["media", *args, "--config", str(config_path)], env={"DENDRITE_LITE_CONFIG": None})


async def _populate(
    config_path: Path, rows: list[tuple[str, str, bytes, int, int | None, str | None]]
) -> dict[str, str]:
    """(server_name, media_id, content, age in days, last read days ago, uploader) -> media_id:
    sha256."""
    config = load_config(config_path)
    storage = await Storage.open(config.database_path, readers=1)
    repo = MediaRepository(storage, FileStore(config.media_path))
    repo.files.prepare()
    hashes = {}
    try:
        for server_name, media_id, data, age_days, read_days, user_id in rows:
            media = MediaRow(
                server_name=server_name, media_id=media_id, sha256=None, size=None,
                content_type="image/png", upload_name=None, user_id=user_id,
                created_ts=now_ms() - age_days * DAY_MS,
                last_access_ts=now_ms() - read_days * DAY_MS if read_days is not None else None,
            )

            async def once(data: bytes = data):
                yield data

            row = await repo.store(media, once(), max_bytes=1 << 20)
            hashes[media_id] = row.sha256
    finally:
        await storage.close()
    return hashes


def _remaining(config_path: Path) -> set[str]:
    async def ids() -> set[str]:
        storage = await Storage.open(load_config(config_path).database_path, readers=1)
        try:
            rows = await storage.db.read(lambda c: c.execute_fetchall("SELECT media_id FROM media"))
        finally:
            await storage.close()
        return {r[0] for r in rows}

    return asyncio.run(ids())


def test_purge_remote_deletes_old_remote_copies_only(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "dendrite-lite.toml", tmp_path / "data")
    hashes = asyncio.run(_populate(config_path, [
        ("other.org", "oldRemote", b"old remote", 40, None, None),
        ("other.org", "oldButRead", b"read lately", 40, 2, None),
        ("other.org", "newRemote", b"new remote", 3, None, None),
        ("other.org", "sharedOld", b"same bytes", 40, None, None),
        # our user's upload, sharing sharedOld's file
        ("example.org", "ours", b"same bytes", 400, None, "@me:example.org"),
        ("example.org", "oldPreview", b"a preview image", 40, None, None),  # no uploader
        ("example.org", "newPreview", b"new preview", 1, None, None),
    ]))
    media = tmp_path / "data" / "media"
    files = {p.name for p in media.rglob("*") if p.is_file()}
    assert {hashes["oldRemote"], hashes["sharedOld"]} <= files

    result = invoke(config_path, "purge-remote", "--older-than", "30d")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted 3 cached copies (35 bytes).\n"
    assert _remaining(config_path) == {"oldButRead", "newRemote", "ours", "newPreview"}
    files = {p.name for p in media.rglob("*") if p.is_file()}
    assert hashes["oldRemote"] not in files
    assert hashes["sharedOld"] in files  # still our upload's

    usage = invoke(config_path, "usage")
    assert usage.stdout == "Uploaded here: 2 (21 bytes)\nCached from other servers: 2 (21 bytes)\n"
    bad = invoke(config_path, "purge-remote", "--older-than", "soon")
    assert bad.exit_code == 2 and "--older-than: 'soon' is not a duration" in bad.output


def test_quarantine_and_delete(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "dendrite-lite.toml", tmp_path / "data")
    asyncio.run(_populate(config_path, [("example.org", "pic", b"picture", 0, None, "@me:example.org")]))
    assert invoke(config_path, "quarantine", "mxc://example.org/pic").exit_code == 0
    missing = invoke(config_path, "quarantine", "mxc://example.org/nope")
    assert missing.exit_code == 1 and "there is no media mxc://example.org/nope" in missing.output
    assert invoke(config_path, "delete", "not-an-mxc").exit_code == 2
    deleted = invoke(config_path, "delete", "mxc://example.org/pic")
    assert (deleted.exit_code, deleted.stdout) == (0, "Deleted mxc://example.org/pic.\n")
    assert _remaining(config_path) == set()
