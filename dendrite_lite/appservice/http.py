"""Requests from the homeserver to an application service (application-service-api).

Every request carries `Authorization: Bearer <hs_token>`. httpx is imported on the first
request, not at start (tests/unit/test_server_process.py keeps the server image lean). The TLS
context is the system's default, which honours SSL_CERT_FILE for an AS with a private CA.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dendrite_lite.appservice.registration import Registration

if TYPE_CHECKING:
    import httpx

__all__ = ["APP_PREFIX", "AppserviceError", "AppserviceHttp"]

APP_PREFIX = "/_matrix/app/v1"
TIMEOUT_S = 30.0
MAX_BODY_BYTES = 4 * 1024 * 1024


class AppserviceError(Exception):
    """No usable answer from the AS: `status` is its HTTP status, or None when it could not be
    reached at all."""

    def __init__(self, as_id: str, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(f"appservice {as_id}: {message}")
        self.as_id = as_id
        self.message = message
        self.status = status
        self.body = body


class AppserviceHttp:
    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                verify=ssl.create_default_context(), trust_env=False, follow_redirects=False,
                timeout=httpx.Timeout(self._timeout_s, connect=min(self._timeout_s, 10.0)),
                headers={"User-Agent": "dendrite-lite"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        reg: Registration,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The AS's parsed 2xx JSON answer to `method {url}{path}`; AppserviceError otherwise."""
        if reg.url is None:
            raise AppserviceError(reg.id, "has no url in its registration")
        import httpx

        try:
            response = await self._http().request(
                method, reg.url + path, params=params,
                headers={
                    "Authorization": f"Bearer {reg.hs_token}",
                    **({"Content-Type": "application/json"} if body is not None else {}),
                },
                content=json.dumps(body).encode() if body is not None else None,
            )
        except httpx.HTTPError as e:
            raise AppserviceError(reg.id, f"unreachable: {type(e).__name__} {e}") from None
        content = response.content[:MAX_BODY_BYTES]
        try:
            parsed = json.loads(content) if content else {}
        except ValueError:
            parsed = None
        if not 200 <= response.status_code < 300:
            raise AppserviceError(
                reg.id, f"answered {response.status_code}", response.status_code, parsed
            )
        if parsed is None:
            raise AppserviceError(reg.id, "answered with a body that is not JSON", response.status_code)
        return parsed

    async def send_transaction(self, reg: Registration, txn_id: int, body: Mapping[str, Any]) -> Any:
        return await self.request(reg, "PUT", f"{APP_PREFIX}/transactions/{txn_id}", body=body)

    async def query_user(self, reg: Registration, user_id: str) -> bool:
        return await self._query(reg, f"{APP_PREFIX}/users/{quote(user_id, safe='')}")

    async def query_alias(self, reg: Registration, alias: str) -> bool:
        return await self._query(reg, f"{APP_PREFIX}/rooms/{quote(alias, safe='')}")

    async def _query(self, reg: Registration, path: str) -> bool:
        try:
            await self.request(reg, "GET", path)
        except AppserviceError:
            return False  # 404 (it does not have it) or unreachable: the thing does not exist
        return True

    async def ping(self, reg: Registration, transaction_id: str | None) -> None:
        body = {"transaction_id": transaction_id} if transaction_id is not None else {}
        await self.request(reg, "POST", f"{APP_PREFIX}/ping", body=body)
