"""Helpers for the media tests: uploads, downloads, the files in a server's media store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from dendrite_lite.api.app import Services
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register

__all__ = ["AUTHED", "LEGACY", "upload", "user_headers", "content_files", "media_service", "mxc_parts"]

AUTHED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"


async def user_headers(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    return auth_header((await register(client, name))["access_token"])


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes,
    content_type: str | None = "application/octet-stream", file_name: str | None = None,
) -> str:
    """POST /upload; the mxc:// URI."""
    params = {"filename": file_name} if file_name is not None else None
    extra = {"Content-Type": content_type} if content_type is not None else {}
    resp = await client.post(
        f"{LEGACY}/upload", content=data, headers={**headers, **extra}, params=params
    )
    assert resp.status_code == 200, resp.text
    uri: str = resp.json()["content_uri"]
    assert uri.startswith("mxc://")
    return uri


def mxc_parts(uri: str) -> str:
    """`mxc://server/id` -> `server/id`, for a download path."""
    return uri.removeprefix("mxc://")


def media_service(srv: RunningServer) -> Any:
    svc: Services = srv.app().extensions["dendrite_lite"]
    return svc.media


def content_files(srv: RunningServer) -> list[Path]:
    """Every file under the store's content/ directory."""
    return sorted(p for p in (srv.config.media_path / "content").rglob("*") if p.is_file())
