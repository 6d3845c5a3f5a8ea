"""preview_guard.py: which addresses previews may reach, and that the transport connects to
the address it checked (so a DNS answer that changes after the check is never used)."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from dendrite_lite.media.preview_guard import (
    AddressPolicy,
    AddressRefused,
    GuardedTransport,
)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1",
        "169.254.169.254", "0.0.0.0", "224.0.0.251", "239.255.255.250", "255.255.255.255",
        "192.0.2.1", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
        "2001:db8::1",
        # IPv6 forms that carry a private IPv4 address.
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    ],
)
def test_non_public_refused(address: str) -> None:
    assert not AddressPolicy().permits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:84e5", "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"])
def test_public_permitted(address: str) -> None:
    assert AddressPolicy().permits(ipaddress.ip_address(address))


def test_allow_list_admits_listed_networks_only() -> None:
    policy = AddressPolicy(["127.0.0.1/32", "192.168.1.0/24"])
    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    assert policy.permits(ipaddress.ip_address("192.168.1.77"))
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.permits(ipaddress.ip_address("127.0.0.2"))
    assert not policy.permits(ipaddress.ip_address("192.168.2.1"))


class Answers:
    """A resolver whose answers change from one lookup to the next (DNS rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def addresses(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


async def _one_page_server() -> tuple[asyncio.Server, list[bytes]]:
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0), heads


async def test_connects_to_the_checked_address_with_the_name_as_host() -> None:
    server, heads = await _one_page_server()
    port = server.sockets[0].getsockname()[1]
    # First answer permitted (the allow-list), every later one refused: a second lookup at
    # connection time would be refused, or go to 10.0.0.1.
    resolver = Answers(["127.0.0.1"], ["10.0.0.1"])
    transport = GuardedTransport(AddressPolicy(["127.0.0.1/32"]), resolver)
    async with server, httpx.AsyncClient(transport=transport) as client:
        resp = await client.get(f"http://rebind.test:{port}/x")
    assert (resp.status_code, resp.content) == (200, b"ok")
    assert resolver.lookups == ["rebind.test"]
    assert heads[0].startswith(b"GET /x HTTP/1.1\r\n")
    assert f"\r\nhost: rebind.test:{port}\r\n".encode() in heads[0].lower()


@pytest.mark.parametrize("answer", [["10.0.0.1"], ["127.0.0.1", "10.0.0.1"], []])
async def test_any_refused_address_refuses_the_name(answer: list[str]) -> None:
    server, heads = await _one_page_server()
    port = server.sockets[0].getsockname()[1]
    transport = GuardedTransport(AddressPolicy(["127.0.0.1/32"]), Answers(answer))
    async with server, httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(AddressRefused):
            await client.get(f"http://mixed.test:{port}/")
    assert heads == []
