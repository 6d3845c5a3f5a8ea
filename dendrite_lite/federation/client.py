"""The outbound federation client: resolve the destination, sign with X-Matrix, send over TLS.

One `httpx.AsyncClient` per destination server name (bounded, least recently used closed
first), so connections to a peer are reused across requests and a connection set up with one
server's SNI is never used for another's. TLS is verified against the system CAs (or
`federation.ca_file`) unless `federation.verify_tls = false`.

Errors are `FederationError`s: `RemoteError` when the peer answered with a non-2xx status (its
Matrix errcode, if any, is kept), `UnreachableError` when no answer came (DNS, connect, TLS,
timeout, oversized or non-JSON response). Retrying is the caller's business (the outbox).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from dendrite_lite.config import Config
from dendrite_lite.crypto.canonical import CanonicalJSONError, encode_canonical_json, parse_json
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.delegation.discovery import (
    DiscoveryError,
    DnsSrvResolver,
    Resolution,
    ResponseTooLarge,
    ServerDiscovery,
    SrvResolver,
    read_body_limited,
)
from dendrite_lite.federation.auth import authorization_header

__all__ = [
    "FederationError",
    "RemoteError",
    "UnreachableError",
    "FederationClient",
    "make_ssl_context",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_MAX_RESPONSE_BYTES",
]

DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
# send_join answers for big rooms carry the whole state and auth chain; 100 MiB fits rooms with
# tens of thousands of members while bounding what a hostile peer can make us buffer.
DEFAULT_MAX_RESPONSE_BYTES = 100 * 1024 * 1024
MAX_CLIENTS = 256


class FederationError(Exception):
    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination
        self.message = message


class UnreachableError(FederationError):
    """No usable answer: resolution, connection, TLS, timeout, size or JSON failure."""


class RemoteError(FederationError):
    """The peer answered with a non-2xx status."""

    def __init__(self, destination: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        errcode = body.get("errcode") if isinstance(body, dict) else None
        self.errcode: str | None = errcode if isinstance(errcode, str) else None
        error = body.get("error") if isinstance(body, dict) else None
        super().__init__(destination, f"HTTP {status} {self.errcode or ''} {error or ''}".strip())


def make_ssl_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    if not verify:
        # Not create_default_context(): it would parse the whole CA bundle (0.7 MB of memory)
        # for a context that never uses it.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


class FederationClient:
    """Build with `from_config`; tests pass a ready `discovery` and `ssl_context`.

    Without them, both are built on first use: an SSL context costs 30-60 ms to create (it
    loads the CA bundle), which server start-up should not pay before the first federation
    request.
    """

    def __init__(
        self,
        server_name: str,
        key: ServerKey,
        discovery: ServerDiscovery | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: httpx.MockTransport
        *,
        verify_tls: bool = True,
        ca_file: str | None = None,
        srv: SrvResolver | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.server_name = server_name
        self.key = key
        self.transport = transport
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self._discovery = discovery
        self._ssl_context = ssl_context
        self._srv = srv
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(
        cls,
        config: Config,
        key: ServerKey,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        srv: SrvResolver | None = None,
    ) -> FederationClient:
        fed = config.federation
        if fed.ca_file is not None and not fed.ca_file.is_file():
            raise FileNotFoundError(f"federation.ca_file {fed.ca_file} does not exist")
        return cls(
            config.server.server_name, key, transport=transport, verify_tls=fed.verify_tls,
            ca_file=str(fed.ca_file) if fed.ca_file else None, srv=srv,
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = make_ssl_context(self.verify_tls, self.ca_file)
        return self._ssl_context

    @property
    def discovery(self) -> ServerDiscovery:
        if self._discovery is None:
            # The well-known fetch uses the same trust settings as federation requests.
            wk_http = httpx.AsyncClient(
                verify=self.ssl_context, transport=self.transport, trust_env=False
            )
            self._discovery = ServerDiscovery(wk_http, self._srv or DnsSrvResolver())
        return self._discovery

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for c in clients:
            await c.aclose()
        if self._discovery is not None:
            await self._discovery.http.aclose()

    def _client_for(self, destination: str) -> httpx.AsyncClient:
        client = self._clients.get(destination)
        if client is not None:
            self._clients.move_to_end(destination)
            return client
        client = httpx.AsyncClient(
            verify=self.ssl_context,
            transport=self.transport,
            timeout=httpx.Timeout(self.timeout_s, connect=CONNECT_TIMEOUT_S),
            # The proxy environment of the machine is not meant for server-to-server traffic.
            trust_env=False,
        )
        self._clients[destination] = client
        if len(self._clients) > MAX_CLIENTS:
            _, old = self._clients.popitem(last=False)
            # Closed in the background: a request still using it keeps its own reference.
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return client

    async def resolve(self, destination: str) -> Resolution:
        try:
            return await self.discovery.resolve(destination)
        except DiscoveryError as e:
            raise UnreachableError(destination, str(e)) from None

    async def request(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        query: Mapping[str, str | int | list[str]] | None = None,
        content: Any | None = None,
        sign: bool = True,
        timeout_s: float | None = None,
        max_response_bytes: int | None = None,
    ) -> Any:
        """Send one request; return the parsed JSON body of a 2xx answer.

        `path` starts with /_matrix/ and is already percent-encoded; `query` values are encoded
        here (lists repeat the key). The signed `uri` is exactly the path and query sent.
        """
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        body = encode_canonical_json(content) if content is not None else None
        headers = {}
        if sign:
            headers["Authorization"] = authorization_header(
                self.server_name, self.key, destination, method, uri, content
            )
        if body is not None:
            headers["Content-Type"] = "application/json"
        resolution = await self.resolve(destination)
        headers["Host"] = resolution.host_header
        client = self._client_for(destination)
        limit = max_response_bytes or self.max_response_bytes
        last: Exception | None = None
        for target in resolution.targets:
            extensions: dict[str, Any] = {}
            if resolution.sni is not None and resolution.sni != target.host:
                # SRV/delegation: connect to the target, but the certificate (and SNI) must be
                # for the name we resolved.
                extensions["sni_hostname"] = resolution.sni
            if timeout_s is not None:
                extensions["timeout"] = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S).as_dict()
            try:
                status, raw = await _send(
                    client, method, resolution.url(uri, target), headers, body, extensions, limit
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                last = e
                continue  # the next SRV target, if any
            except httpx.HTTPError as e:
                raise UnreachableError(destination, f"{type(e).__name__}: {e}") from None
            except ResponseTooLarge:
                raise UnreachableError(destination, f"response larger than {limit} bytes") from None
            return _parse_answer(destination, status, raw)
        raise UnreachableError(destination, f"cannot connect: {type(last).__name__}: {last}")

    async def get_json(self, destination: str, path: str, **kw: Any) -> Any:
        return await self.request("GET", destination, path, **kw)

    async def put_json(self, destination: str, path: str, content: Any, **kw: Any) -> Any:
        return await self.request("PUT", destination, path, content=content, **kw)

    async def post_json(self, destination: str, path: str, content: Any, **kw: Any) -> Any:
        return await self.request("POST", destination, path, content=content, **kw)


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    extensions: dict[str, Any],
    limit: int,
) -> tuple[int, bytes]:
    request = client.build_request(method, url, headers=headers, content=body, extensions=extensions)
    response = await client.send(request, stream=True)
    try:
        return response.status_code, await read_body_limited(response, limit)
    finally:
        await response.aclose()


def _parse_answer(destination: str, status: int, raw: bytes) -> Any:
    try:
        body = parse_json(raw) if raw else None
    except CanonicalJSONError:
        if 200 <= status < 300:
            raise UnreachableError(destination, f"HTTP {status} with a non-JSON body") from None
        body = None
    if not 200 <= status < 300:
        raise RemoteError(destination, status, body)
    return body

