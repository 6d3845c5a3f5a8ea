"""Outbound HTTP of the server (federation requests, /.well-known lookups) over httpx.

What federation needs of httpx, set up once here:
- `new_client`: one pooled `httpx.AsyncClient` per purpose, with no redirects followed (the
  well-known lookup follows them itself, https only), no proxies or .netrc from the environment,
  and `Accept-Encoding: identity`, so a peer cannot send a small compressed body that inflates
  past our size cap;
- `SniPools`: a transport with one connection pool per TLS server name. A request connects to
  the address discovery chose (an SRV target, say) but its certificate must be valid for the
  server name, sent as SNI through httpcore's `sni_hostname` extension. httpcore pools by
  address alone, so two server names delegated to one address would otherwise share a
  connection whose certificate was checked for only one of them;
- `fetch`: one request whose answer is streamed and refused as soon as it passes a size cap,
  announced or not. Nothing is allocated from the announced length: a peer that announces
  100 MB and sends one byte costs us one byte. `stream` is its first half, for answers read
  another way (a media file streamed to disk), `read_body` its second.

Errors: `ConnectFailed` (nothing was sent; another address may be tried), `ResponseTooLarge`,
and `HttpError` for every other failure to get an answer.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx

from dendrite_lite.outbound_errors import ConnectFailed, HttpError, ResponseTooLarge

__all__ = [
    "HttpError",
    "ConnectFailed",
    "ResponseTooLarge",
    "Answer",
    "SniPools",
    "new_client",
    "fetch",
    "stream",
    "read_body",
    "check_identity",
]

USER_AGENT = "dendrite-lite"
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=30.0)



@dataclass(slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes | bytearray


class SniPools(httpx.AsyncBaseTransport):
    """One httpx connection pool per SNI name (None: the URL's host, the usual case).

    The pools live as long as the client: there is one per server name we talk to through a
    delegation, and an idle pool holds no connection once keep-alive expires.
    """

    def __init__(self, ssl_context: ssl.SSLContext, *, http2: bool = False) -> None:
        self._ssl_context = ssl_context
        self._http2 = http2
        self._pools: dict[str | None, httpx.AsyncHTTPTransport] = {}

    def _pool(self, sni: str | None) -> httpx.AsyncHTTPTransport:
        pool = self._pools.get(sni)
        if pool is None:
            pool = self._pools[sni] = httpx.AsyncHTTPTransport(
                verify=self._ssl_context, http2=self._http2, limits=_LIMITS, trust_env=False
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sni = request.extensions.get("sni_hostname")
        return await self._pool(sni if isinstance(sni, str) else None).handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def new_client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout_s: float,
    connect_timeout_s: float,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    sni: str | None = None,
) -> AsyncIterator[httpx.Response]:
    """Send one request and yield its answer with the body not yet read, for a caller that
    reads it its own way (`read_body`, or a media file streamed to disk). httpx errors while
    the caller reads come out as our errors too.

    `timeout_s` bounds each step (connecting aside: `connect_timeout_s`), so a peer that keeps
    sending slowly is not cut off, one that stops is.
    """
    request = client.build_request(
        method, url, headers=headers, content=content,
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        extensions={"sni_hostname": sni} if sni is not None else None,
    )
    try:
        response = await client.send(request, stream=True)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as e:
        raise ConnectFailed(f"cannot connect to {request.url.netloc.decode()}: {type(e).__name__}: {e}") from None
    except httpx.TimeoutException as e:
        raise HttpError(f"{type(e).__name__}: no answer within {timeout_s} s") from None
    except httpx.HTTPError as e:
        raise HttpError(f"{type(e).__name__}: {e}") from None
    try:
        yield response
    except httpx.TimeoutException as e:
        raise HttpError(f"{type(e).__name__}: no answer within {timeout_s} s") from None
    except httpx.HTTPError as e:
        raise HttpError(f"{type(e).__name__}: {e}") from None
    finally:
        # An unfinished body closes the connection instead of returning it to the pool.
        await response.aclose()


def check_identity(response: httpx.Response, max_body_bytes: int) -> None:
    """Refuse an answer that announces more than `max_body_bytes`, or is compressed."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        raise ResponseTooLarge(f"Content-Length {declared} > {max_body_bytes}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # We asked for identity: a compressed body could inflate far past the cap within
        # one chunk, before it is counted.
        raise HttpError(f"unrequested Content-Encoding {encoding!r}")


async def read_body(response: httpx.Response, max_body_bytes: int) -> bytearray:
    """The whole body of a streamed answer, refused as soon as it passes `max_body_bytes`."""
    check_identity(response, max_body_bytes)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_body_bytes:
            raise ResponseTooLarge(f"body larger than {max_body_bytes} bytes")
    return body


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_body_bytes: int,
    timeout_s: float,
    connect_timeout_s: float,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    sni: str | None = None,
) -> Answer:
    """Send one request and read its whole answer, at most `max_body_bytes` of body (see
    `stream` for the timeouts)."""
    async with stream(
        client, method, url, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
        headers=headers, content=content, sni=sni,
    ) as response:
        body = await read_body(response, max_body_bytes)
    return Answer(response.status_code, response.headers, body)
