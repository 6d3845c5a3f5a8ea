"""Outbound HTTP for URL previews that reaches only the public internet.

A user names the URL, so without a guard a preview is a request from inside our network to
wherever they like (the router's admin page, a cloud metadata endpoint, our own admin API).
The guard sits where the address is chosen, as an httpx transport (`GuardedTransport`):
- it resolves the host itself (`SystemResolver`: getaddrinfo; `DnsResolver`: one DNS server,
  `media.url_preview_dns_server`) and checks EVERY address against `AddressPolicy`; one refused
  address refuses the request, as Synapse does, so a name cannot mix a public and a private
  address and hope for the second;
- it then connects to a checked IP itself: the request's URL is rewritten to that IP while the
  Host header stays the name and TLS sends the name as SNI (httpcore's `sni_hostname`) and
  checks the certificate against it. Nothing resolves the name a second time, so a DNS answer
  that changes between our check and the connection (DNS rebinding) is never used;
- every request passes through it, each redirect hop included.

`AddressPolicy` refuses every address that is not global unicast (loopback, private, carrier
NAT, link-local, multicast, reserved, documentation, unspecified), looking inside IPv6 forms that
carry an IPv4 address (mapped, 6to4, NAT64 well-known prefix, Teredo), unless it is in the
operator's allow-list (`media.url_preview_ip_allowlist`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any, Protocol

import httpx

from dendrite_lite.outbound_http import SniPools

__all__ = [
    "AddressPolicy",
    "AddressRefused",
    "DnsResolver",
    "GuardedTransport",
    "HostResolver",
    "SystemResolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address previews may not reach.

    Deliberately not an httpx error: it passes through httpx and outbound_http.fetch unchanged,
    so the service can tell it from a failure of the page."""


class AddressPolicy:
    def __init__(self, allow: Iterable[str] = ()) -> None:
        self._allow = [ipaddress.ip_network(net, strict=False) for net in allow]

    def permits(self, address: IPAddress) -> bool:
        if any(address in net for net in self._allow):
            return True
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return self.permits(embedded)
        return address.is_global and not address.is_multicast


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when traffic to it reaches that one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): traffic goes to the client
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class HostResolver(Protocol):
    async def addresses(self, host: str, port: int) -> list[str]:
        """Every address of `host`; OSError when there is none."""
        ...


class SystemResolver:
    """getaddrinfo, as every other program on the machine resolves (hosts file included)."""

    async def addresses(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DnsResolver:
    """A and AAAA from one DNS server (`host:port`), with dnspython."""

    def __init__(self, server: str) -> None:
        host, _, port = server.rpartition(":")
        self._nameserver, self._port = host.strip("[]"), int(port)
        self._resolver: Any = None

    async def addresses(self, host: str, port: int) -> list[str]:
        import dns.exception

        from dendrite_lite.delegation.discovery import new_dns_resolver

        if self._resolver is None:
            self._resolver = new_dns_resolver([self._nameserver], self._port)
        try:
            answer = await self._resolver.resolve_name(host)
        except dns.exception.DNSException as e:
            raise OSError(f"cannot resolve {host}: {e}") from None
        return list(answer.addresses())


class GuardedTransport(httpx.AsyncBaseTransport):
    """Connects to checked addresses only (see the module docstring)."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: HostResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver or SystemResolver()
        self._pools = SniPools(ssl_context or ssl.create_default_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = _ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in await self._resolver.addresses(host, port)]
            except OSError as e:
                raise httpx.ConnectError(str(e), request=request) from None
        refused = [a for a in addresses if not self._policy.permits(a)]
        if refused or not addresses:
            what = host if literal is not None else f"{host} ({', '.join(map(str, addresses))})"
            raise AddressRefused(f"{what} is not an address URL previews may reach")
        error: httpx.ConnectError | None = None
        for address in addresses:
            try:
                return await self._pools.handle_async_request(_to_address(request, address, literal is None))
            except httpx.ConnectError as e:  # nothing was sent: the next address may answer
                error = e
        assert error is not None
        raise error

    async def aclose(self) -> None:
        await self._pools.aclose()


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _to_address(request: httpx.Request, address: IPAddress, named: bool) -> httpx.Request:
    """The request sent to `address`; its Host header (set when the request was built) still
    names the host, and TLS is for the name (SNI and certificate check)."""
    extensions = dict(request.extensions)
    if named and request.url.scheme == "https":
        extensions["sni_hostname"] = request.url.host
    return httpx.Request(
        request.method, request.url.copy_with(host=str(address)),
        headers=request.headers, stream=request.stream, extensions=extensions,
    )
