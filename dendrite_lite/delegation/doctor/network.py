"""The doctor's network, injectable: trust, SRV and CNAME lookups, address overrides.

Checks see the network only through `DoctorNetwork`, so tests swap each part for a fake or a
loopback server:
- `ssl_context`: the system CAs plus any `--ca-file`, verifying like a peer would;
- `srv`: discovery's `SrvResolver` (the same object federation uses);
- `cname`: tells whether a name is an alias, for RFC 2782's rule on SRV targets;
- `overrides`: (host, port) -> (ip, port), like curl's --resolve. They apply to A/AAAA
  lookups, TLS handshakes and every HTTP request (through `transport()`), so a test can serve
  `https://example.test/.well-known/matrix/server` from a loopback port while the certificate
  is still checked for `example.test`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from dendrite_lite.delegation.discovery import (
    DnsSrvResolver,
    SrvResolver,
    is_ip_literal,
)
from dendrite_lite.outbound_http import SniPools

__all__ = ["Address", "CnameResolver", "DnsCnameResolver", "DoctorNetwork", "make_trust"]

Address = tuple[str, int]  # (host or IP without brackets, port)

DEFAULT_TIMEOUT_S = 10.0


class CnameResolver(Protocol):
    async def cname_of(self, host: str) -> str | None:
        """The canonical name when `host` is an alias (a CNAME), else None."""
        ...


class DnsCnameResolver:
    """One CNAME query with dnspython; failures count as "not an alias" because the A/AAAA
    check right after reports names that do not resolve."""

    def __init__(self, nameservers: list[str] | None = None, port: int = 53) -> None:
        self._nameservers = nameservers
        self._port = port

    async def cname_of(self, host: str) -> str | None:
        import dns.asyncresolver
        import dns.exception

        resolver = dns.asyncresolver.Resolver(configure=self._nameservers is None)
        if self._nameservers is not None:
            resolver.nameservers = self._nameservers
            resolver.port = self._port
        resolver.lifetime = 5.0
        try:
            answer = await resolver.resolve(host, "CNAME")
        except dns.exception.DNSException:
            return None
        for record in answer:
            target: str = record.target.to_text(omit_final_dot=True)
            return target
        return None


def make_trust(ca_files: list[str] | None = None) -> ssl.SSLContext:
    """The system CAs plus `ca_files`: what a peer trusts, plus what the operator adds (a
    test CA, a self-signed certificate on loopback)."""
    ctx = ssl.create_default_context()
    for path in ca_files or ():
        ctx.load_verify_locations(cafile=path)
    return ctx


class _OverrideTransport(httpx.AsyncBaseTransport):
    """Sends a request for an overridden (host, port) to the override address, keeping the
    Host header and sending the original host as SNI, so the certificate check is unchanged."""

    def __init__(self, inner: httpx.AsyncBaseTransport, overrides: Mapping[Address, Address]) -> None:
        self._inner = inner
        self._overrides = overrides

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        dest = self._overrides.get((url.host, url.port or 443))
        if dest is None:
            return await self._inner.handle_async_request(request)
        extensions = dict(request.extensions)
        if "sni_hostname" not in extensions and not is_ip_literal(url.host):
            extensions["sni_hostname"] = url.host
        # A new request: httpx attaches the caller's own to the response, so hooks still see
        # the URL that was asked for.
        routed = httpx.Request(
            request.method, url.copy_with(host=dest[0], port=dest[1]),
            headers=request.headers, stream=request.stream, extensions=extensions,
        )
        return await self._inner.handle_async_request(routed)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(slots=True)
class DoctorNetwork:
    ssl_context: ssl.SSLContext
    srv: SrvResolver
    cname: CnameResolver
    overrides: Mapping[Address, Address] = field(default_factory=dict)
    timeout_s: float = DEFAULT_TIMEOUT_S
    clock: Callable[[], float] = time.time

    @classmethod
    def default(cls, ca_files: list[str] | None = None) -> DoctorNetwork:
        return cls(make_trust(ca_files), DnsSrvResolver(), DnsCnameResolver())

    def transport(self) -> httpx.AsyncBaseTransport:
        """A fresh transport for one httpx client (one SNI pool per certificate name, as
        federation has)."""
        inner = SniPools(self.ssl_context)
        return _OverrideTransport(inner, self.overrides) if self.overrides else inner

    async def addresses(self, host: str, port: int) -> list[Address]:
        """Where a connection to host:port goes: the override, the IP itself, or the A/AAAA
        answers in the system resolver's order (the resolver federation connects with).
        Raises OSError when the name does not resolve."""
        override = self.overrides.get((host, port))
        if override is not None:
            return [override]
        if is_ip_literal(host):
            return [(host, port)]
        loop = asyncio.get_running_loop()
        infos: list[Any] = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.timeout_s
        )
        out: list[Address] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = (str(sockaddr[0]), int(sockaddr[1]))
            if address not in out:
                out.append(address)
        return out
