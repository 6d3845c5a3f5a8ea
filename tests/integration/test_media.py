"""Media uploads and downloads through a real server (issue 14 items 1 and 2): both API
families, headers, limits, Range, path traversal, deduplication, create + PUT, the freeze."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dendrite_lite.api.app import DRAIN_TIMEOUT_S
from tests.conftest import RunningServer
from tests.spec_schema import assert_matches_operation
from tests.integration.account_helpers import running_server
from tests.integration.media_helpers import (
    AUTHED,
    LEGACY,
    content_files,
    mxc_parts,
    upload,
    user_headers,
)

CSP = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("media"), {"media.freeze_unauthenticated": False}
    ) as s:
        yield s


def _assert_media_headers(resp: httpx.Response) -> None:
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_upload_and_download_byte_identical_through_both_api_families(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "bytes")
    data = bytes(range(256)) * 4000 + b"tail"  # 1 MB of every byte value
    uri = await upload(srv.client, headers, data, "application/pdf", "report.pdf")
    assert uri.startswith("mxc://test.localhost/")
    authed = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
    legacy = await srv.client.get(f"{LEGACY}/download/{mxc_parts(uri)}")
    for resp in (authed, legacy):
        assert resp.status_code == 200
        assert resp.content == data
        assert resp.headers["Content-Type"] == "application/pdf"
        assert resp.headers["Content-Length"] == str(len(data))
        assert resp.headers["Content-Disposition"] == "attachment; filename*=utf-8''report.pdf"
        assert resp.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert resp.headers["Accept-Ranges"] == "bytes"
        _assert_media_headers(resp)


async def test_file_name_override_inline_types_and_sanitised_names(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "names")
    uri = await upload(srv.client, headers, b"<b>hi</b>", "text/html", '../../x/evil"na\r\nme.html')
    resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
    # HTML could run script in a browser: never inline. Directory parts, quotes and control
    # characters are gone from the name.
    assert resp.headers["Content-Disposition"] == "attachment; filename*=utf-8''evilname.html"
    assert resp.headers["Content-Type"] == "text/html"

    uri = await upload(srv.client, headers, b"plain", "text/plain", "a.txt")
    resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}/r%C3%A9sum%C3%A9%201.txt", headers=headers)
    assert resp.headers["Content-Disposition"] == "inline; filename*=utf-8''r%C3%A9sum%C3%A9%201.txt"

    uri = await upload(srv.client, headers, b"no type", content_type=None)
    resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == "attachment"


async def test_authenticated_endpoints_need_a_token(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "tokens")
    uri = await upload(srv.client, headers, b"secret", "text/plain")
    for path in (
        f"{AUTHED}/download/{mxc_parts(uri)}",
        f"{AUTHED}/download/{mxc_parts(uri)}/name.txt",
        f"{AUTHED}/thumbnail/{mxc_parts(uri)}?width=32&height=32",
        f"{AUTHED}/config",
        f"{LEGACY}/config",
    ):
        resp = await srv.client.get(path)
        assert resp.status_code == 401, path
        assert resp.json()["errcode"] == "M_MISSING_TOKEN"
        _assert_media_headers(resp)
    for path in (f"{LEGACY}/upload", "/_matrix/media/v1/create"):
        resp = await srv.client.post(path, content=b"x")
        assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_config(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "config")
    for path in (f"{AUTHED}/config", f"{LEGACY}/config"):
        resp = await srv.client.get(path, headers=headers)
        assert resp.json() == {"m.upload.size": 50 * 1024 * 1024}


@pytest.mark.parametrize(
    "path",
    [
        "test.localhost/..%2F..%2Fsigning.key",
        "test.localhost/%2E%2E%2Fsigning.key",
        "test.localhost/..",
        "..%2F..%2Fetc/passwd",
        "test.localhost/abc%00def",
        "test.localhost/%C0%AE%C0%AE%2Fsigning.key",
    ],
)
async def test_media_id_with_traversal_is_refused(srv: RunningServer, path: str) -> None:
    headers = await user_headers(srv.client, f"trav{hashlib.md5(path.encode()).hexdigest()[:8]}")
    key = (srv.config.signing_key_path).read_bytes()
    for url in (f"{AUTHED}/download/{path}", f"{LEGACY}/download/{path}"):
        resp = await srv.client.get(url, headers=headers)
        assert resp.status_code in (400, 404), (url, resp.status_code)
        assert resp.json()["errcode"] in ("M_INVALID_PARAM", "M_NOT_FOUND", "M_UNRECOGNIZED")
        assert key not in resp.content


async def test_unknown_media_is_404(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "unknown")
    for url in (f"{AUTHED}/download/test.localhost/nope", f"{LEGACY}/download/test.localhost/nope"):
        resp = await srv.client.get(url, headers=headers)
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
        _assert_media_headers(resp)


async def test_concurrent_identical_uploads_are_stored_once(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "dedupe")
    data = b"the same file, ten times at once " * 30000
    before = set(content_files(srv))
    uris = await asyncio.gather(*(upload(srv.client, headers, data) for _ in range(10)))
    assert len(set(uris)) == 10  # ten media ids...
    added = set(content_files(srv)) - before
    assert [p.name for p in added] == [hashlib.sha256(data).hexdigest()]  # ...one file
    for uri in uris:
        resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
        assert resp.content == data


async def test_range_requests(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "ranges")
    data = bytes(range(100))
    url = f"{AUTHED}/download/{mxc_parts(await upload(srv.client, headers, data))}"

    async def get(extra: dict[str, str]) -> httpx.Response:
        return await srv.client.get(url, headers={**headers, **extra})

    resp = await get({"Range": "bytes=10-19"})
    assert (resp.status_code, resp.content) == (206, data[10:20])
    assert resp.headers["Content-Range"] == "bytes 10-19/100"
    assert resp.headers["Content-Length"] == "10"
    _assert_media_headers(resp)
    resp = await get({"Range": "bytes=-5"})
    assert (resp.status_code, resp.content) == (206, data[95:])
    resp = await get({"Range": "bytes=90-"})
    assert (resp.status_code, resp.content) == (206, data[90:])
    resp = await get({"Range": "bytes=100-"})
    assert resp.status_code == 416
    resp = await get({"If-None-Match": f'"{hashlib.sha256(data).hexdigest()}"'})
    assert (resp.status_code, resp.content) == (304, b"")


async def test_create_then_put(srv: RunningServer) -> None:
    alice = await user_headers(srv.client, "creator")
    bob = await user_headers(srv.client, "intruder")
    created = await srv.client.post("/_matrix/media/v1/create", headers=alice)
    assert created.status_code == 200
    body = created.json()
    uri = body["content_uri"]
    assert uri.startswith("mxc://test.localhost/")
    assert isinstance(body["unused_expires_at"], int)
    url = f"{AUTHED}/download/{mxc_parts(uri)}"

    early = await srv.client.get(url, headers=alice, params={"timeout_ms": 50})
    assert (early.status_code, early.json()["errcode"]) == (504, "M_NOT_YET_UPLOADED")

    waiting = asyncio.create_task(srv.client.get(url, headers=bob, params={"timeout_ms": 5000}))
    await asyncio.sleep(0.2)
    put_url = f"{LEGACY}/upload/{mxc_parts(uri)}"
    resp = await srv.client.put(put_url, content=b"late", headers={**bob, "Content-Type": "text/plain"})
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
    resp = await srv.client.put(
        put_url, content=b"late content", headers={**alice, "Content-Type": "text/plain"},
        params={"filename": "late.txt"},
    )
    assert (resp.status_code, resp.json()) == (200, {})
    waited = await waiting  # a download waiting for the upload gets it as soon as it lands
    assert (waited.status_code, waited.content) == (200, b"late content")
    assert waited.headers["Content-Disposition"] == "inline; filename*=utf-8''late.txt"
    again = await srv.client.put(put_url, content=b"again", headers=alice)
    assert (again.status_code, again.json()["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    unknown = await srv.client.put(f"{LEGACY}/upload/test.localhost/neverCreated", content=b"x", headers=alice)
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_pending_uploads_are_limited_per_user(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "pending")
    for _ in range(5):
        assert (await srv.client.post("/_matrix/media/v1/create", headers=headers)).status_code == 200
    resp = await srv.client.post("/_matrix/media/v1/create", headers=headers)
    assert (resp.status_code, resp.json()["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    other = await user_headers(srv.client, "pending2")
    assert (await srv.client.post("/_matrix/media/v1/create", headers=other)).status_code == 200


async def test_large_upload_is_streamed(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "large")
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB
    count = 320  # 20 MiB, sent chunked (no Content-Length)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield block

    resp = await srv.client.post(
        f"{LEGACY}/upload", content=body(), headers={**headers, "Content-Type": "video/mp4"}
    )
    assert resp.status_code == 200, resp.text
    uri = resp.json()["content_uri"]
    digest = hashlib.sha256()
    size = 0
    async with srv.client.stream("GET", f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers) as r:
        assert r.headers["Content-Length"] == str(len(block) * count)
        async for chunk in r.aiter_bytes():
            digest.update(chunk)
            size += len(chunk)
    assert size == len(block) * count
    assert digest.hexdigest() == hashlib.sha256(block * count).hexdigest()


async def test_size_limit(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"media.max_upload_bytes": 1000}) as srv:
        headers = await user_headers(srv.client, "limited")
        resp = await srv.client.post(f"{LEGACY}/upload", content=b"x" * 1001, headers=headers)
        assert (resp.status_code, resp.json()["errcode"]) == (413, "M_TOO_LARGE")
        _assert_media_headers(resp)

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 100

        resp = await srv.client.post(f"{LEGACY}/upload", content=chunked(), headers=headers)
        assert (resp.status_code, resp.json()["errcode"]) == (413, "M_TOO_LARGE")
        assert content_files(srv) == []
        assert list((srv.config.media_path / "tmp").iterdir()) == []
        ok = await srv.client.post(f"{LEGACY}/upload", content=b"z" * 1000, headers=headers)
        assert ok.status_code == 200
        assert (await srv.client.get(f"{AUTHED}/config", headers=headers)).json() == {"m.upload.size": 1000}


async def test_declared_size_over_the_limit_is_refused_before_the_body_is_sent(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"media.max_upload_bytes": 1000}) as srv:
        headers = await user_headers(srv.client, "declared")
        host, port = srv.listening.client
        reader, writer = await asyncio.open_connection(host, port)
        request = (
            f"POST {LEGACY}/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
            f"Content-Type: image/png\r\nAuthorization: {headers['Authorization']}\r\n\r\n"
        )
        writer.write(request.encode())  # headers only: not one byte of the 10 MB body
        await writer.drain()
        await asyncio.sleep(0.3)
        assert list((srv.config.media_path / "tmp").iterdir()) == []  # no upload was started
        # The answer needs none of the body (it comes once the server stops waiting to drain it,
        # api/app.py DRAIN_TIMEOUT_S).
        status = await asyncio.wait_for(reader.readline(), DRAIN_TIMEOUT_S + 3)
        assert status.startswith(b"HTTP/1.1 413"), status
        rest = await asyncio.wait_for(reader.read(4096), 2)
        assert b'"errcode":"M_TOO_LARGE"' in rest
        writer.close()


async def test_uploads_are_rate_limited_per_user(tmp_path: Path) -> None:
    overrides = {
        "ratelimit.enabled": True, "ratelimit.upload_per_second": 0.001, "ratelimit.upload_burst": 2,
        "ratelimit.register_per_second": 100.0, "ratelimit.register_burst": 100,
    }
    async with running_server(tmp_path, overrides) as srv:
        alice = await user_headers(srv.client, "fast")
        for _ in range(2):
            await upload(srv.client, alice, b"one")
        resp = await srv.client.post(f"{LEGACY}/upload", content=b"three", headers=alice)
        assert (resp.status_code, resp.json()["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        assert resp.json()["retry_after_ms"] > 0
        create = await srv.client.post("/_matrix/media/v1/create", headers=alice)
        assert create.status_code == 429
        bob = await user_headers(srv.client, "slow")
        await upload(srv.client, bob, b"bob's own bucket")


async def test_freeze_keeps_older_media_on_the_legacy_endpoints(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"media.freeze_unauthenticated": False}) as srv:
        headers = await user_headers(srv.client, "freeze")
        old = await upload(srv.client, headers, b"before the freeze", "text/plain")
    (tmp_path / "signing.key").unlink()  # the test launcher writes a fresh key each start
    async with running_server(tmp_path, {"media.freeze_unauthenticated": True}) as srv:
        headers = await user_headers(srv.client, "freeze2")
        new = await upload(srv.client, headers, b"after the freeze", "text/plain")
        resp = await srv.client.get(f"{LEGACY}/download/{mxc_parts(old)}")
        assert (resp.status_code, resp.content) == (200, b"before the freeze")
        resp = await srv.client.get(f"{LEGACY}/download/{mxc_parts(new)}")
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
        resp = await srv.client.get(f"{LEGACY}/download/{mxc_parts(new)}", headers=headers)
        assert resp.status_code == 404  # a token does not open the legacy endpoint either
        resp = await srv.client.get(
            f"{LEGACY}/thumbnail/{mxc_parts(new)}", params={"width": 32, "height": 32}
        )
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
        resp = await srv.client.get(f"{AUTHED}/download/{mxc_parts(new)}", headers=headers)
        assert (resp.status_code, resp.content) == (200, b"after the freeze")


async def test_answers_match_the_spec_schemas(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "schemas")
    repo, authed = "client-server/content-repo.yaml", "client-server/authed-content-repo.yaml"
    resp = await srv.client.post(f"{LEGACY}/upload", content=b"x", headers=headers)
    assert_matches_operation(repo, "/media/v3/upload", "post", 200, resp.json())
    resp = await srv.client.post("/_matrix/media/v1/create", headers=headers)
    assert_matches_operation(repo, "/media/v1/create", "post", 200, resp.json())
    resp = await srv.client.get(f"{LEGACY}/config", headers=headers)
    assert_matches_operation(repo, "/media/v3/config", "get", 200, resp.json())
    resp = await srv.client.get(f"{AUTHED}/config", headers=headers)
    assert_matches_operation(authed, "/media/config", "get", 200, resp.json())


async def test_head_gives_the_headers_without_the_body(srv: RunningServer) -> None:
    headers = await user_headers(srv.client, "head")
    data = b"x" * 5000
    uri = await upload(srv.client, headers, data, "text/plain", "h.txt")
    resp = await srv.client.head(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
    assert (resp.status_code, resp.content) == (200, b"")
    assert resp.headers["Content-Length"] == "5000"
    assert resp.headers["Content-Disposition"] == "inline; filename*=utf-8''h.txt"
    _assert_media_headers(resp)
