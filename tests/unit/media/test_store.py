"""media/store.py: content addressing, limits, and no half file after a failed or cut write."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite.media.store import BodyTimeout, FileStore, TooLarge


async def _chunks(*parts: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


def _content_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "content").rglob("*") if p.is_file())


async def test_stream_is_stored_under_its_hash(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.prepare()
    data = [b"a" * 700_000, b"b" * 700_000, b"c"]
    stored = await store.write_stream(_chunks(*data), max_bytes=10_000_000)
    whole = b"".join(data)
    assert stored.sha256 == hashlib.sha256(whole).hexdigest()
    assert stored.size == len(whole)
    assert store.path_for(stored.sha256).read_bytes() == whole
    assert store.temporary_files() == []


async def test_identical_content_is_one_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.prepare()
    results = await asyncio.gather(
        *(store.write_stream(_chunks(b"same", b" bytes", pause=0.01), max_bytes=100) for _ in range(5))
    )
    assert len({r.sha256 for r in results}) == 1
    assert [p.name for p in _content_files(tmp_path)] == [results[0].sha256]
    assert store.temporary_files() == []


async def test_too_large_leaves_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.prepare()
    with pytest.raises(TooLarge):
        await store.write_stream(_chunks(b"x" * 60, b"y" * 60), max_bytes=100)
    assert _content_files(tmp_path) == []
    assert store.temporary_files() == []


async def test_idle_stream_times_out_and_leaves_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.prepare()
    with pytest.raises(BodyTimeout):
        await store.write_stream(_chunks(b"x", b"y", pause=0.5), max_bytes=100, idle_timeout=0.1)
    assert _content_files(tmp_path) == []
    assert store.temporary_files() == []


async def test_cancelled_write_leaves_no_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.prepare()
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            yield b"z" * 65536
            await asyncio.sleep(0.001)

    task = asyncio.create_task(store.write_stream(endless(), max_bytes=10**9))
    await started.wait()
    await asyncio.sleep(0.05)
    assert store.temporary_files() != []  # mid-write: the bytes are in tmp/, never content/
    assert _content_files(tmp_path) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.temporary_files() == []
    assert _content_files(tmp_path) == []


def test_prepare_drops_leftover_temporary_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.prepare()
    (tmp_path / "tmp" / "leftover").write_bytes(b"half an upload")
    FileStore(tmp_path).prepare()
    assert store.temporary_files() == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab", "A" * 64, "0" * 63 + "/"])
def test_path_for_takes_only_hex_digests(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        FileStore(tmp_path).path_for(bad)
