"""DnsSrvResolver against a tiny DNS server on loopback UDP (dnspython builds the answers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dendrite_lite.delegation.discovery import DnsSrvResolver, SrvRecord

ZONE = {
    "_matrix-fed._tcp.example.org.": ["10 5 8448 a.example.net.", "20 0 443 b.example.net."],
    "_matrix-fed._tcp.nosrv.example.org.": None,  # the name exists, no SRV: NOERROR, no answer
    "_matrix-fed._tcp.dot.example.org.": ["0 0 0 ."],
}


class FakeDns(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queries: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text()
        self.queries.append(name)
        response = dns.message.make_response(query)
        if name.startswith("_matrix-fed._tcp.broken."):
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in ZONE:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif ZONE[name] is not None:
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "SRV", *ZONE[name]))
        self.transport.sendto(response.to_wire(), addr)  # type: ignore[attr-defined]


@pytest.fixture
async def fake_dns() -> AsyncIterator[tuple[FakeDns, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(FakeDns, local_addr=("127.0.0.1", 0))
    yield proto, transport.get_extra_info("sockname")[1]
    transport.close()


async def test_srv_records_and_cache(fake_dns: tuple[FakeDns, int]) -> None:
    proto, port = fake_dns
    resolver = DnsSrvResolver(["127.0.0.1"], port)
    records = await resolver.resolve_srv("_matrix-fed._tcp.example.org")
    assert sorted(records, key=lambda r: r.priority) == [
        SrvRecord(10, 5, 8448, "a.example.net"),
        SrvRecord(20, 0, 443, "b.example.net"),
    ]
    await resolver.resolve_srv("_matrix-fed._tcp.example.org")
    assert proto.queries == ["_matrix-fed._tcp.example.org."]  # the second answer came from the TTL cache


async def test_missing_records_are_empty(fake_dns: tuple[FakeDns, int]) -> None:
    _, port = fake_dns
    resolver = DnsSrvResolver(["127.0.0.1"], port)
    assert await resolver.resolve_srv("_matrix-fed._tcp.unknown.example.org") == []
    assert await resolver.resolve_srv("_matrix-fed._tcp.nosrv.example.org") == []
    # "." arrives as "" so discovery can tell "no service" from a real target.
    assert await resolver.resolve_srv("_matrix-fed._tcp.dot.example.org") == [SrvRecord(0, 0, 0, "")]


async def test_server_failure_is_a_lookup_error(fake_dns: tuple[FakeDns, int]) -> None:
    _, port = fake_dns
    resolver = DnsSrvResolver(["127.0.0.1"], port)
    with pytest.raises(LookupError, match="SRV lookup for _matrix-fed._tcp.broken.org failed"):
        await resolver.resolve_srv("_matrix-fed._tcp.broken.org")
