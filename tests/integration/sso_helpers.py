"""What the single sign-on tests (CAS, OpenID Connect) do as a browser and as a client: our
URLs as paths for the test client, the "continue to your app" page's link and its login
token, m.login.token, and a device deletion that asks for user-interactive authentication."""

from __future__ import annotations

import html
import re
import urllib.parse
from typing import Any

import httpx

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import V3, auth_header

__all__ = ["continue_link", "delete_device", "local_path", "token_login", "token_of"]


def local_path(url: str) -> str:
    """A URL of our server (public_baseurl) as a path for the test client."""
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == f"https://{SERVER_NAME}", url
    return f"{parts.path}?{parts.query}"


def continue_link(page: httpx.Response) -> str:
    """The one link of one of our HTML pages (the continue page, the fallback page)."""
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    hrefs = re.findall(r'href="([^"]*)"', page.text)
    assert len(hrefs) == 1, page.text
    return html.unescape(hrefs[0])


def token_of(link: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert len(query["loginToken"]) == 1
    return query["loginToken"][0]


async def token_login(client: httpx.AsyncClient, token: str, **extra: Any) -> httpx.Response:
    return await client.post(f"{V3}/login", json={"type": "m.login.token", "token": token, **extra})


async def delete_device(srv: RunningServer, token: str, device_id: str,
                        auth: dict[str, Any] | None = None) -> httpx.Response:
    body = {"auth": auth} if auth is not None else {}
    return await srv.client.request(
        "DELETE", f"{V3}/devices/{device_id}", json=body, headers=auth_header(token)
    )
