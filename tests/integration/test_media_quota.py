"""The per-user media quota (media.max_user_bytes) and quarantine through a real server: past
the quota an upload is 403 M_FORBIDDEN (content-repo.yaml: "the user has reached a quota"),
while a file over max_upload_bytes stays 413 M_TOO_LARGE; other users are not charged;
quarantined media is 404 until released."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from dendrite_lite.media.admin import MediaAdmin
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register, running_server
from tests.integration.federation_helpers import services_of

UPLOAD = "/_matrix/media/v3/upload"


async def _upload(srv: RunningServer, token: str, data: bytes, *, chunked: bool = False) -> httpx.Response:
    async def stream() -> AsyncIterator[bytes]:
        yield data

    return await srv.client.post(
        UPLOAD, content=stream() if chunked else data,
        headers={**auth_header(token), "Content-Type": "application/octet-stream"},
    )


async def test_quota_refuses_with_403_and_size_limit_stays_413(tmp_path: Path) -> None:
    overrides = {"media.max_user_bytes": 1000, "media.max_upload_bytes": 1500}
    async with running_server(tmp_path, overrides) as srv:
        alice = (await register(srv.client, "alice"))["access_token"]
        bob = (await register(srv.client, "bob"))["access_token"]
        assert (await _upload(srv, alice, b"a" * 600)).status_code == 200
        # 400 left: a 600-byte body is cut off as it streams.
        for chunked in (False, True):
            over = await _upload(srv, alice, b"b" * 600, chunked=chunked)
            assert (over.status_code, over.json()["errcode"]) == (403, "M_FORBIDDEN"), chunked
        assert (await _upload(srv, alice, b"c" * 400)).status_code == 200
        full = await _upload(srv, alice, b"d")
        assert (full.status_code, full.json()["errcode"]) == (403, "M_FORBIDDEN")
        # Bob is charged for his own uploads only; past max_upload_bytes is 413 whatever the quota.
        assert (await _upload(srv, bob, b"e" * 1000)).status_code == 200
        too_big = await _upload(srv, bob, b"f" * 1600)
        assert (too_big.status_code, too_big.json()["errcode"]) == (413, "M_TOO_LARGE")


async def test_no_quota_by_default_and_quarantine(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        alice = (await register(srv.client, "alice"))["access_token"]
        for _ in range(3):
            resp = await _upload(srv, alice, b"x" * 300_000)
            assert resp.status_code == 200
        media_id = resp.json()["content_uri"].rsplit("/", 1)[1]
        url = f"/_matrix/client/v1/media/download/{srv.config.server.server_name}/{media_id}"
        admin = MediaAdmin(services_of(srv).media.repo, srv.config.server.server_name)
        assert await admin.set_quarantined(srv.config.server.server_name, media_id)
        gone = await srv.client.get(url, headers=auth_header(alice))
        assert (gone.status_code, gone.json()["errcode"]) == (404, "M_NOT_FOUND")
        assert await admin.set_quarantined(srv.config.server.server_name, media_id, False)
        back = await srv.client.get(url, headers=auth_header(alice))
        assert (back.status_code, back.content) == (200, b"x" * 300_000)
