"""This machine's public IP address, for `dendrite-lite init` (server.public_ip).

Two sources, cheapest first:
1. The address of the interface that routes to the internet: a UDP socket "connected" to a
   public address makes the kernel pick the route and source address, and sends no packet.
   On a VPS this is the public address itself.
2. When that address is not globally routable (a Raspberry Pi at home behind the router's
   NAT), an HTTPS "what is my IP" service says which address the internet sees. It is asked
   only when the caller allows it (the interactive wizard, where the user sees and confirms
   the answer), with a short timeout, so nothing leaves the machine unasked.

Both are injectable (the socket factory, the lookup URL and httpx transport), so tests never
leave loopback. Nothing here prints.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

__all__ = ["DEFAULT_LOOKUP_URL", "DetectedIp", "detect_public_ip", "interface_address"]

DEFAULT_LOOKUP_URL = "https://api.ipify.org"
LOOKUP_TIMEOUT_S = 3.0
# Any globally routed addresses do: connect() on UDP only picks the route, nothing is sent.
_ROUTE_PROBES = ((socket.AF_INET, "1.1.1.1"), (socket.AF_INET6, "2606:4700:4700::1111"))

SocketFactory = Callable[[int, int], socket.socket]


@dataclass(frozen=True)
class DetectedIp:
    """`address` ("" when nothing was found) and, in words, where it came from."""

    address: str
    source: str
    behind_nat: bool = False  # the interface address is private: ports must be forwarded


def interface_address(make_socket: SocketFactory = socket.socket) -> str | None:
    """The source address of the default route (IPv4 first), or None without a route."""
    for family, probe in _ROUTE_PROBES:
        try:
            with make_socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 53))
                return str(s.getsockname()[0])
        except OSError:
            continue
    return None


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def detect_public_ip(
    *,
    lookup: bool,
    lookup_url: str = DEFAULT_LOOKUP_URL,
    transport: httpx.BaseTransport | None = None,
    make_socket: SocketFactory = socket.socket,
) -> DetectedIp:
    local = interface_address(make_socket)
    if local is not None and is_public(local):
        return DetectedIp(local, "the address of this machine's internet interface")
    private = f" (this machine's own address {local} is private)" if local else ""
    if not lookup:
        return DetectedIp("", f"not detected{private}", behind_nat=local is not None)
    try:
        with httpx.Client(transport=transport, timeout=LOOKUP_TIMEOUT_S, trust_env=False) as http:
            answer = http.get(lookup_url)
        seen = answer.text.strip()
        if answer.status_code == 200 and is_public(seen):
            return DetectedIp(seen, f"as the internet sees it, from {lookup_url}{private}",
                              behind_nat=local is not None)
        why = f"{lookup_url} answered HTTP {answer.status_code}: {seen[:40]!r}"
    except httpx.HTTPError as e:
        why = f"{lookup_url} did not answer ({e or type(e).__name__})"
    return DetectedIp("", f"not detected: {why}{private}", behind_nat=local is not None)
