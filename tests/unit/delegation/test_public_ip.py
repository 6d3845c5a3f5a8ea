"""delegation/public_ip.py: the interface address when it is public, else (when allowed) an
HTTPS lookup; a fake socket and httpx.MockTransport, nothing leaves the machine."""

from __future__ import annotations

import socket
from typing import Any, Self

import httpx

from dendrite_lite.delegation.public_ip import (
    DEFAULT_LOOKUP_URL,
    detect_public_ip,
    interface_address,
)


class FakeSocket:
    """A UDP socket whose route has the source address `source` (None: no route)."""

    def __init__(self, source: dict[int, str | None], family: int) -> None:
        self._source = source.get(family)
        self.connected_to: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def connect(self, address: Any) -> None:
        if self._source is None:
            raise OSError(101, "Network is unreachable")
        self.connected_to = address

    def getsockname(self) -> tuple[str, int]:
        assert self._source is not None
        return (self._source, 40000)


def sockets(v4: str | None, v6: str | None = None) -> Any:
    return lambda family, kind: FakeSocket({socket.AF_INET: v4, socket.AF_INET6: v6}, family)


def lookup_answering(text: str, status: int = 200) -> tuple[httpx.MockTransport, list[str]]:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(status, text=text)

    return httpx.MockTransport(handler), asked


def test_a_public_interface_address_needs_no_lookup() -> None:
    transport, asked = lookup_answering("93.184.215.14")
    found = detect_public_ip(lookup=True, transport=transport, make_socket=sockets("93.184.216.34"))
    assert (found.address, found.behind_nat) == ("93.184.216.34", False)
    assert found.source == "the address of this machine's internet interface"
    assert asked == []


def test_ipv6_when_there_is_no_ipv4_route() -> None:
    assert interface_address(sockets(None, "2a01:4f8::1")) == "2a01:4f8::1"
    assert interface_address(sockets(None, None)) is None


def test_behind_nat_the_lookup_says_what_the_internet_sees() -> None:
    transport, asked = lookup_answering("93.184.215.14\n")
    found = detect_public_ip(lookup=True, transport=transport, make_socket=sockets("192.168.1.20"))
    assert (found.address, found.behind_nat) == ("93.184.215.14", True)
    assert found.source == (
        f"as the internet sees it, from {DEFAULT_LOOKUP_URL} (this machine's own address"
        " 192.168.1.20 is private)"
    )
    assert asked == [DEFAULT_LOOKUP_URL]


def test_no_lookup_unless_allowed() -> None:
    transport, asked = lookup_answering("93.184.215.14")
    found = detect_public_ip(lookup=False, transport=transport, make_socket=sockets("10.0.0.5"))
    assert (found.address, found.behind_nat) == ("", True)
    assert found.source == "not detected (this machine's own address 10.0.0.5 is private)"
    assert asked == []


def test_a_lookup_answer_that_is_no_public_ip_is_not_taken() -> None:
    transport, _ = lookup_answering("<html>rate limited</html>", status=429)
    found = detect_public_ip(lookup=True, transport=transport, make_socket=sockets(None))
    assert found.address == ""
    assert found.source == (
        f"not detected: {DEFAULT_LOOKUP_URL} answered HTTP 429: '<html>rate limited</html>'"
    )

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    found = detect_public_ip(lookup=True, transport=httpx.MockTransport(refuse), make_socket=sockets(None))
    assert found.source == f"not detected: {DEFAULT_LOOKUP_URL} did not answer (connection refused)"
