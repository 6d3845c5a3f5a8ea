"""The outbound federation client: resolve the destination, sign with X-Matrix, send over TLS.

Requests go over one pooled httpx client (outbound_http.py): connections to a peer are reused
across requests, and pooled by address and SNI, so a connection set up with one server's SNI is
never used for another's; answers are capped in size while they stream in. TLS is verified
against the system CAs (or `federation.ca_file`) unless `federation.verify_tls = false`.

Errors are `FederationError`s: `RemoteError` when the peer answered with a non-2xx status (its
Matrix errcode, if any, is kept), `UnreachableError` when no answer came (DNS, connect, TLS,
timeout, oversized or non-JSON response). Retrying is the caller's business (the outbox).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dendrite_lite.config import Config
from dendrite_lite.crypto.canonical import CanonicalJSONError, encode_canonical_json, parse_json
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.delegation.discovery import (
    DiscoveryError,
    DnsSrvResolver,
    Resolution,
    ServerDiscovery,
    SrvResolver,
)
from dendrite_lite.federation.auth import authorization_header

if TYPE_CHECKING:
    import httpx

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
        self._http: httpx.AsyncClient | None = None

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

    # httpx is imported with the first client built, not with this module: a server without
    # federation never loads it (with the command line it brings, 4-7 MB of RSS).
    @property
    def http(self) -> httpx.AsyncClient:
        """The client of federation requests (built on first use)."""
        if self._http is None:
            from dendrite_lite.outbound_http import SniPools, new_client

            self._http = new_client(self.transport or SniPools(self.ssl_context))
        return self._http

    @property
    def discovery(self) -> ServerDiscovery:
        if self._discovery is None:
            import httpx

            from dendrite_lite.outbound_http import new_client

            # The well-known lookups get their own client, with the same trust settings.
            transport = self.transport or httpx.AsyncHTTPTransport(verify=self.ssl_context, trust_env=False)
            self._discovery = ServerDiscovery(new_client(transport), self._srv or DnsSrvResolver())
        return self._discovery

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._discovery is not None:
            await self._discovery.http.aclose()

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
        from dendrite_lite.outbound_http import HttpError, ResponseTooLarge, read_body

        limit = max_response_bytes or self.max_response_bytes
        try:
            async with self.stream(
                method, destination, path, query=query, content=content, sign=sign,
                timeout_s=timeout_s,
            ) as response:
                raw = await read_body(response, limit)
        except ResponseTooLarge:
            raise UnreachableError(destination, f"response larger than {limit} bytes") from None
        except HttpError as e:
            raise UnreachableError(destination, f"{type(e).__name__}: {e}") from None
        status, text = response.status_code, _json_text(raw)
        del raw  # a big answer (send_join: megabytes) is not held as bytes while parsed
        return _parse_answer(destination, status, text)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        query: Mapping[str, str | int | list[str]] | None = None,
        content: Any | None = None,
        sign: bool = True,
        timeout_s: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """`request`'s first half: the answer of any status with its body unread (outbound_http
        .stream), for a caller that reads it its own way (media, streamed to disk). Errors
        while reading it are outbound_http's HttpError."""
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        body = encode_canonical_json(content) if content is not None else None
        headers = {}
        if sign:
            headers["Authorization"] = authorization_header(
                self.server_name, self.key, destination, method, uri, content
            )
        if body is not None:
            headers["Content-Type"] = "application/json"
        resolution = await self.resolve(destination)  # builds the HTTP clients on first use
        from dendrite_lite.outbound_http import ConnectFailed, HttpError, stream

        headers["Host"] = resolution.host_header
        last: Exception | None = None
        async with contextlib.AsyncExitStack() as stack:
            for target in resolution.targets:
                # SRV/delegation: connect to the target, but the certificate (and SNI) must be
                # for the name we resolved.
                sni = resolution.sni if resolution.sni is not None and resolution.sni != target.host else None
                try:
                    response = await stack.enter_async_context(stream(
                        self.http, method, resolution.url(uri, target), headers=headers,
                        content=body, sni=sni, connect_timeout_s=CONNECT_TIMEOUT_S,
                        timeout_s=timeout_s if timeout_s is not None else self.timeout_s,
                    ))
                except ConnectFailed as e:
                    last = e
                    continue  # the next SRV target, if any
                except HttpError as e:
                    raise UnreachableError(destination, f"{type(e).__name__}: {e}") from None
                yield response
                return
        raise UnreachableError(destination, f"cannot connect: {last}")

    async def get_json(self, destination: str, path: str, **kw: Any) -> Any:
        return await self.request("GET", destination, path, **kw)

    async def put_json(self, destination: str, path: str, content: Any, **kw: Any) -> Any:
        return await self.request("PUT", destination, path, content=content, **kw)

    async def post_json(self, destination: str, path: str, content: Any, **kw: Any) -> Any:
        return await self.request("POST", destination, path, content=content, **kw)


def _json_text(raw: bytes | bytearray) -> str | None:
    """The body as text the way json.loads would decode it; None if it is not text."""
    try:
        return raw.decode(json.detect_encoding(raw), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        return None


def _parse_answer(destination: str, status: int, text: str | None) -> Any:
    """`text`: the body decoded (_json_text), None when it is not text."""
    body: Any = None
    json_ok = False
    if text is not None:
        try:
            body = parse_json(text) if text else None
            json_ok = True
        except CanonicalJSONError:
            pass
    if not json_ok and 200 <= status < 300:
        raise UnreachableError(destination, f"HTTP {status} with a non-JSON body")
    if not 200 <= status < 300:
        raise RemoteError(destination, status, body)
    return body

