"""The doctor's network, injectable: trust, SRV and CNAME lookups, address overrides.

Checks see the network only through `DoctorNetwork`, so tests swap each part for a fake or a
loopback server:
- `ssl_context`: the system CAs plus any `--ca-file`, verifying like a peer would;
- `srv`: discovery's `SrvResolver` (the same object federation uses);
- `cname`: tells whether a name is an alias, for RFC 2782's rule on SRV targets;
- `hosts`: A/AAAA lookups. None (the default) is the system resolver, which federation
  connects with; `DoctorNetwork.default(dns_server=...)` asks one DNS server for everything
  (SRV, CNAME, A/AAAA), and HTTP requests then connect to the addresses it answered, so a
  test zone served by dnsmasq on 127.0.0.1:<port> is seen whole;
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from dendrite_lite.delegation.discovery import (
    DnsSrvResolver,
    SrvResolver,
    is_ip_literal,
    new_dns_resolver,
)
from dendrite_lite.outbound_http import SniPools

__all__ = [
    "Address", "CnameResolver", "DnsCnameResolver", "DnsHostResolver", "DoctorNetwork", "HostResolver",
    "make_trust",
]

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
        import dns.exception

        try:
            answer = await new_dns_resolver(self._nameservers, self._port).resolve(host, "CNAME")
        except dns.exception.DNSException:
            return None
        for record in answer:
            target: str = record.target.to_text(omit_final_dot=True)
            return target
        return None


class HostResolver(Protocol):
    async def addresses(self, host: str, port: int) -> list[Address]:
        """The addresses of `host` (port attached); OSError when it has none."""
        ...


class DnsHostResolver:
    """A/AAAA with dnspython, for a DNS server other than the system's (--dns-server): AAAA
    first, as getaddrinfo orders them on a host with IPv6."""

    def __init__(self, nameservers: list[str], port: int = 53) -> None:
        self._nameservers = nameservers
        self._port = port

    async def addresses(self, host: str, port: int) -> list[Address]:
        import dns.exception
        import dns.resolver

        resolver = new_dns_resolver(self._nameservers, self._port)
        out: list[Address] = []
        errors = []
        for rdtype in ("AAAA", "A"):
            try:
                answer = await resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as e:
                errors.append(str(e))
                continue
            out += [(record.address, port) for record in answer]
        if not out:
            raise OSError(f"{host}: {'; '.join(errors) or 'no A or AAAA answer'}")
        return out


def make_trust(ca_files: list[str] | None = None) -> ssl.SSLContext:
    """The system CAs plus `ca_files`: what a peer trusts, plus what the operator adds (a
    test CA, a self-signed certificate on loopback)."""
    ctx = ssl.create_default_context()
    for path in ca_files or ():
        ctx.load_verify_locations(cafile=path)
    return ctx


Route = Callable[[str, int], Awaitable[Address | None]]


class _RoutingTransport(httpx.AsyncBaseTransport):
    """Sends a request to the address `route` gives for its (host, port), when it gives one,
    keeping the Host header and sending the original host as SNI, so the certificate check is
    unchanged. No route: the request goes out as it is."""

    def __init__(self, inner: httpx.AsyncBaseTransport, route: Route) -> None:
        self._inner = inner
        self._route = route

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        try:
            dest = await self._route(url.host, url.port or 443)
        except (TimeoutError, OSError) as e:
            # What httpx raises when its own lookup fails: fetch() reports it as ConnectFailed.
            raise httpx.ConnectError(f"cannot resolve {url.host}: {e}", request=request) from None
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
    hosts: HostResolver | None = None  # None: the system resolver

    @classmethod
    def default(cls, ca_files: list[str] | None = None, dns_server: Address | None = None) -> DoctorNetwork:
        if dns_server is None:
            return cls(make_trust(ca_files), DnsSrvResolver(), DnsCnameResolver())
        nameservers, port = [dns_server[0]], dns_server[1]
        return cls(
            make_trust(ca_files), DnsSrvResolver(nameservers, port), DnsCnameResolver(nameservers, port),
            hosts=DnsHostResolver(nameservers, port),
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        """A fresh transport for one httpx client (one SNI pool per certificate name, as
        federation has)."""
        inner = SniPools(self.ssl_context)
        return _RoutingTransport(inner, self._route) if self.overrides or self.hosts else inner

    async def _route(self, host: str, port: int) -> Address | None:
        if (host, port) in self.overrides:
            return self.overrides[(host, port)]
        if self.hosts is None or is_ip_literal(host):
            return None
        return (await self.addresses(host, port))[0]

    async def addresses(self, host: str, port: int) -> list[Address]:
        """Where a connection to host:port goes: the override, the IP itself, or the A/AAAA
        answers (the system resolver's, in its order, unless `hosts` replaces it).
        Raises OSError when the name does not resolve."""
        override = self.overrides.get((host, port))
        if override is not None:
            return [override]
        if is_ip_literal(host):
            return [(host, port)]
        if self.hosts is not None:
            return await asyncio.wait_for(self.hosts.addresses(host, port), self.timeout_s)
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
