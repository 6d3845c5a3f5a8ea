"""A server killed (SIGKILL) in the middle of an upload leaves no half file behind a media id:
the bytes so far sit in the store's tmp/ only, no row names them, and the next start empties
tmp/ (media/store.py). The upload then succeeds in full after the restart."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.integration.account_helpers import running_server
from tests.integration.media_helpers import AUTHED, mxc_parts, upload, user_headers

RUN_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dendrite_lite.config import Config, ListenConfig, RatelimitConfig, RegistrationConfig, ServerConfig
    from dendrite_lite.crypto.keys import new_server_key, write_signing_key
    from dendrite_lite.server import run
    from dendrite_lite.users.passwords import fast_hashing_for_tests

    data = Path(sys.argv[1])
    write_signing_key(data / "signing.key", new_server_key())
    with fast_hashing_for_tests():
        run(Config(server=ServerConfig(server_name="test.localhost", data_dir=data),
                   listen=ListenConfig(client="127.0.0.1:0", federation=""),
                   registration=RegistrationConfig(mode="open"),
                   ratelimit=RatelimitConfig(enabled=False)))
    """
)

BLOCK = hashlib.sha256(b"crash").digest() * 4096  # 128 KiB
TOTAL_BLOCKS = 64  # 8 MiB in all; the server is killed after about half


def _media_rows(data: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data / "homeserver.db") as db:
        return db.execute("SELECT sha256, size FROM media WHERE sha256 IS NOT NULL").fetchall()


async def test_kill_during_upload_leaves_no_half_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_SCRIPT, str(tmp_path), stderr=asyncio.subprocess.PIPE, env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stderr is not None
    tmp_dir = tmp_path / "media" / "tmp"
    content_dir = tmp_path / "media" / "content"
    half_sent = asyncio.Event()
    killed = asyncio.Event()
    try:
        first = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        match = re.fullmatch(r"INFO dendrite_lite\.server: client listener on (\S+)\n", first)
        assert match, first
        async with httpx.AsyncClient(base_url=match.group(1), timeout=20) as client:
            headers = await user_headers(client, "crash")
            before = await upload(client, headers, b"stored before the crash", "text/plain")

            async def body() -> AsyncIterator[bytes]:
                for i in range(TOTAL_BLOCKS):
                    if i == TOTAL_BLOCKS // 2:
                        half_sent.set()
                        await killed.wait()  # the server dies meanwhile
                    yield BLOCK

            sending = asyncio.create_task(
                client.post("/_matrix/media/v3/upload", content=body(), headers=headers)
            )
            await half_sent.wait()
            # The first half is on disk, in tmp/ only (written in 256 KiB blocks).
            for _ in range(200):
                partial = list(tmp_dir.iterdir())
                if partial and partial[0].stat().st_size >= 2 * 1024 * 1024:
                    break
                await asyncio.sleep(0.02)
            assert len(partial) == 1 and partial[0].stat().st_size >= 2 * 1024 * 1024
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            killed.set()
            result = await asyncio.gather(sending, return_exceptions=True)
            assert isinstance(result[0], httpx.TransportError)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # After the kill: the half file is in tmp/, nothing in content/ holds it, no row names it.
    [partial_file] = tmp_dir.iterdir()
    assert partial_file.stat().st_size < len(BLOCK) * TOTAL_BLOCKS
    whole = hashlib.sha256(BLOCK * TOTAL_BLOCKS).hexdigest()
    rows = _media_rows(tmp_path)
    assert len(rows) == 1  # only the upload that finished before the crash
    for sha256, size in rows:
        path = content_dir / sha256[:2] / sha256[2:4] / sha256
        assert path.stat().st_size == size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    assert all(p.name != whole for p in content_dir.rglob("*"))

    (tmp_path / "signing.key").unlink()  # the test launcher writes a fresh key each start
    async with running_server(tmp_path) as srv:
        assert list(tmp_dir.iterdir()) == []  # emptied at start
        headers = await user_headers(srv.client, "after")
        resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(before)}", headers=headers)
        assert resp.content == b"stored before the crash"
        uri = await upload(srv.client, headers, BLOCK * TOTAL_BLOCKS)
        resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
        assert hashlib.sha256(resp.content).hexdigest() == whole
