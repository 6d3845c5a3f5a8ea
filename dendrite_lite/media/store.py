"""The media files on disk: content-addressed, written atomically, streamed in and out.

Layout under the store's root (`<data_dir>/media` by default):

    content/ab/cd/abcd…(64 hex)   one file per distinct content, named by its SHA-256
    tmp/<random>                  uploads being written; emptied at every start

Why content addressing: identical uploads (the same avatar set in ten rooms, a forwarded image)
take one file, and a file name never comes from a client, so no media id or file name can point
outside the store (`path_for` accepts 64 hex digits only).

What keeps a crash from leaving a half file behind a media id:
- bytes go to a temporary file in tmp/ (same file system as content/), are fsynced, and only
  then renamed to their hash's name: a content/ file is always complete;
- the database row naming the hash is written after the rename, so a row never names a file that
  is not complete on disk (a crash between the two leaves an unreferenced file, never a bad row);
- a temporary file is deleted when its upload fails or is cancelled, and tmp/ is emptied at start
  (a killed process cannot clean up after itself).
Two identical uploads at once each write their own temporary file and rename it to the same
name; rename is atomic, so readers see one complete file either way.

File I/O runs in worker threads (`asyncio.to_thread`), in blocks of `WRITE_BLOCK` bytes, so the
event loop never waits for the disk and an upload never holds more than a block in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import weakref
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["FileStore", "StoredFile", "Received", "TooLarge", "BodyTimeout", "WRITE_BLOCK"]

# Chunks from the network are small (often 16-64 KiB); writing and hashing them in 256 KiB
# blocks makes a few thread hops per MiB instead of one per chunk, and keeps what an upload holds
# in memory small (20 uploads at once hold 20 blocks).
WRITE_BLOCK = 256 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class TooLarge(Exception):
    """The stream went past the size limit; nothing was stored."""


class BodyTimeout(Exception):
    """No bytes arrived for `idle_timeout` seconds; nothing was stored."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Received:
    """A complete upload in tmp/, not yet in place."""

    path: Path
    sha256: str
    size: int


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._content = self.root / "content"
        self._tmp = self.root / "tmp"
        # Only hashes in use have a lock: an entry goes when its last holder drops it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def prepare(self) -> None:
        """Create the directories, and drop temporary files a killed process left behind."""
        self._content.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        """The file of a content hash (which must be 64 lower-case hex digits)."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self._content / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def temporary_files(self) -> list[Path]:
        """Uploads being written right now (tests check that none is left behind)."""
        return sorted(self._tmp.iterdir()) if self._tmp.is_dir() else []

    async def receive(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        idle_timeout: float | None = None,
    ) -> Received:
        """Write a stream of bytes to a temporary file (complete and fsynced when this returns);
        raise TooLarge past `max_bytes` and BodyTimeout when no chunk arrives for
        `idle_timeout` seconds (nothing is left behind then). `install` puts it in place."""
        tmp = self._tmp / secrets.token_hex(16)
        f = await asyncio.to_thread(_open_new, tmp)
        try:
            digest = hashlib.sha256()
            size = 0
            block = bytearray()
            iterator = aiter(chunks)
            while True:
                try:
                    async with asyncio.timeout(idle_timeout):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise BodyTimeout() from None
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge()
                block += chunk
                if len(block) >= WRITE_BLOCK:
                    # The thread gets the block itself and the next one starts afresh: no copy.
                    await asyncio.to_thread(_write_block, f, digest, block)
                    block = bytearray()
            sha256 = await asyncio.to_thread(_finish, f, digest, block)
        except BaseException:
            # Cancellation included: the request went away, so must its temporary file.
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        return Received(tmp, sha256, size)

    async def install(self, received: Received) -> StoredFile:
        """Rename a received file to its hash's name (content/ only ever holds whole files)."""
        try:
            await asyncio.to_thread(self._install, received.path, received.sha256)
        except BaseException:
            received.path.unlink(missing_ok=True)
            raise
        return StoredFile(received.sha256, received.size)

    def lock(self, sha256: str) -> asyncio.Lock:
        """The lock of one content hash: held from a file's install until the row naming it is
        written, and from counting a file's rows until it is deleted (MediaRepository), so a
        delete never unlinks a file an upload of the same bytes is about to name."""
        return self._locks.setdefault(sha256, asyncio.Lock())

    async def write_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        idle_timeout: float | None = None,
    ) -> StoredFile:
        """`receive` then `install`, for a file no row names yet (tests, tools)."""
        received = await self.receive(chunks, max_bytes=max_bytes, idle_timeout=idle_timeout)
        return await self.install(received)

    async def delete(self, sha256: str) -> None:
        """Delete a file (the caller has checked that no row uses it)."""
        await asyncio.to_thread(self.path_for(sha256).unlink, missing_ok=True)

    def _install(self, tmp: Path, sha256: str) -> None:
        final = self.path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        # An identical file may be there already (stored once); replacing it with the same
        # bytes is harmless, and readers holding the old one open keep reading it.
        os.replace(tmp, final)
        _fsync_dir(final.parent)


def _open_new(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _write_block(f: BinaryIO, digest: hashlib._Hash, block: bytes | bytearray) -> None:
    # hashlib releases the GIL for large buffers: hashing here keeps the event loop free.
    digest.update(block)
    f.write(block)


def _finish(f: BinaryIO, digest: hashlib._Hash, block: bytes | bytearray) -> str:
    _write_block(f, digest, block)
    f.flush()
    os.fsync(f.fileno())
    f.close()
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    # The rename itself is durable only once its directory is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
