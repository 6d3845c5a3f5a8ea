"""GET /_matrix/federation/v1/media/download and /thumbnail through a real server, asked by a
simulated remote server with X-Matrix signatures: multipart/mixed as the spec defines it (a JSON
part, then the bytes with their Content-Type and Content-Disposition), parsed here with the
standard library's MIME parser; unsigned requests 401; unknown media 404."""

from __future__ import annotations

import email.parser
import email.policy
import io
from pathlib import Path

import httpx
from PIL import Image

from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register, running_server
from tests.integration.federation_helpers import FED, RemoteServer


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


async def _upload(srv: RunningServer, data: bytes, content_type: str, name: str) -> str:
    token = (await register(srv.client, "uploader"))["access_token"]
    resp = await srv.client.post(
        "/_matrix/media/v3/upload", params={"filename": name}, content=data,
        headers={**auth_header(token), "Content-Type": content_type},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["content_uri"]).rsplit("/", 1)[1]


def _parts(resp: httpx.Response) -> list[email.message.EmailMessage]:
    assert resp.headers["content-type"].startswith("multipart/mixed; boundary=")
    assert int(resp.headers["content-length"]) == len(resp.content)
    head = f"Content-Type: {resp.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + resp.content)
    return list(message.iter_parts())  # type: ignore[attr-defined]


async def test_download_is_multipart_json_then_bytes(tmp_path: Path) -> None:
    data = _png(50, 40)
    async with running_server(tmp_path) as srv:
        media_id = await _upload(srv, data, "image/png", "pic.png")
        remote = await RemoteServer.trusted_by(srv)
        resp = await remote.request(srv, "GET", f"{FED}/media/download/{media_id}")
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-content-type-options"] == "nosniff"
        meta, media = _parts(resp)
        assert (meta.get_content_type(), meta.get_payload(decode=True)) == ("application/json", b"{}")
        assert media.get_content_type() == "image/png"
        assert b"\r\nContent-Disposition: inline; filename*=utf-8''pic.png\r\n\r\n" in resp.content
        assert media.get_payload(decode=True) == data


async def test_thumbnail_is_multipart_with_the_thumbnail(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        media_id = await _upload(srv, _png(800, 600), "image/png", "big.png")
        remote = await RemoteServer.trusted_by(srv)
        resp = await remote.request(srv, "GET", f"{FED}/media/thumbnail/{media_id}?width=32&height=32&method=crop")
        assert resp.status_code == 200, resp.text
        _, thumb = _parts(resp)
        assert thumb.get_content_type() in ("image/png", "image/jpeg")
        image = Image.open(io.BytesIO(thumb.get_payload(decode=True)))
        assert image.size == (32, 32)


async def test_unsigned_and_unknown(tmp_path: Path) -> None:
    async with running_server(tmp_path) as srv:
        media_id = await _upload(srv, b"hello", "text/plain", "a.txt")
        unsigned = await srv.federation.get(f"{FED}/media/download/{media_id}")
        assert (unsigned.status_code, unsigned.json()["errcode"]) == (401, "M_UNAUTHORIZED")
        remote = await RemoteServer.trusted_by(srv)
        missing = await remote.request(srv, "GET", f"{FED}/media/download/NoSuchMedia")
        assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")
        bad = await remote.request(srv, "GET", f"{FED}/media/download/..%2Fetc")
        assert bad.status_code in (400, 404)
