"""Fakes behind dendrite_lite.http_client.HttpTransport for unit tests: `MockHttp(handler)` takes
the httpx.MockTransport-style handler the tests already write (an httpx.Request in, an
httpx.Response out, httpx errors raised), so the fakes read like real HTTP."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import httpx

from dendrite_lite.http_client import ConnectFailed, HttpError, HttpRequest, HttpResponse, ResponseTooLarge


class MockHttp:
    def __init__(self, handler: Callable[[httpx.Request], Any]) -> None:
        self.handler = handler
        self.closed = False

    async def send(self, request: HttpRequest, max_body_bytes: int) -> HttpResponse:
        extensions: dict[str, Any] = {"timeout": {"read": request.timeout_s,
                                                  "connect": request.connect_timeout_s}}
        if request.sni is not None:
            extensions["sni_hostname"] = request.sni
        req = httpx.Request(request.method, request.url, headers=dict(request.headers),
                            content=request.body, extensions=extensions)
        try:
            resp = self.handler(req)
            if inspect.isawaitable(resp):
                resp = await resp
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise ConnectFailed(f"{type(e).__name__}: {e}") from None
        except httpx.HTTPError as e:
            raise HttpError(f"{type(e).__name__}: {e}") from None
        declared = resp.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise ResponseTooLarge(f"Content-Length {declared}")
        try:
            body = bytearray(resp.content)  # built with content=/json=
        except httpx.ResponseNotRead:  # built with a stream
            body = bytearray()
            async for chunk in resp.aiter_raw():
                body += chunk
                if len(body) > max_body_bytes:
                    break
        if len(body) > max_body_bytes:
            raise ResponseTooLarge(f"body larger than {max_body_bytes} bytes")
        return HttpResponse(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, bytes(body))

    async def aclose(self) -> None:
        self.closed = True
