"""delegation/name_checks.py: what the wizard says about a name's addresses and the delegation
it publishes, from real discovery resolutions (a MockTransport well-known, fake SRV records)."""

from __future__ import annotations

import json

import httpx
import pytest

from dendrite_lite.delegation.discovery import ServerDiscovery, SrvRecord
from dendrite_lite.delegation.name_checks import (
    AddressCheck,
    DelegationFound,
    _delegation_found,
)
from dendrite_lite.outbound_http import new_client
from tests.unit.delegation.test_discovery import FakeSrv


async def found_for(server_name: str, well_known: dict[str, str] | None,
                    srv: dict[str, list[SrvRecord]] | None = None) -> DelegationFound:
    def handler(request: httpx.Request) -> httpx.Response:
        if well_known is None:
            return httpx.Response(404)
        return httpx.Response(200, content=json.dumps(well_known).encode())

    http = new_client(httpx.MockTransport(handler))
    try:
        resolution = await ServerDiscovery(http, FakeSrv(srv)).resolve(server_name)
    finally:
        await http.aclose()
    return _delegation_found(resolution)


async def test_well_known_srv_and_none() -> None:
    assert await found_for("example.org", {"m.server": "matrix.example.org:443"}) == DelegationFound(
        "well-known", "matrix.example.org:443",
        "https://example.org/.well-known/matrix/server delegates to matrix.example.org:443.",
    )
    srv = {"_matrix-fed._tcp.example.org": [SrvRecord(10, 5, 8448, "matrix.example.org")]}
    found = await found_for("example.org", None, srv)
    assert (found.kind, found.target) == ("srv", "matrix.example.org:8448")
    assert found.summary == "SRV _matrix-fed._tcp.example.org -> matrix.example.org:8448."
    found = await found_for("example.org", None)
    assert (found.kind, found.target) == ("none", "example.org:8448")
    found = await found_for("example.org:8008", None)
    assert found.summary == "'example.org:8008' is a hostname with an explicit port: other servers connect to example.org:8008."


@pytest.mark.parametrize(("addresses", "public_ip", "summary"), [
    (("203.0.113.7", "2001:db8::7"), "2001:db8:0::7", "example.org resolves to 203.0.113.7, 2001:db8::7: this machine."),
    (("198.51.100.1",), "203.0.113.7", "example.org resolves to 198.51.100.1, not this machine (203.0.113.7)."),
    (("198.51.100.1",), "", "example.org resolves to 198.51.100.1 (this machine's public IP is unknown, so whether that is here is too)."),
    (("127.0.1.1",), "203.0.113.7",
     "example.org resolves to 127.0.1.1, a loopback address (/etc/hosts?), not what other servers see in DNS."),
    ((), "203.0.113.7", "example.org has no A/AAAA record yet (Name or service not known)."),
])
def test_address_summaries(addresses: tuple[str, ...], public_ip: str, summary: str) -> None:
    check = AddressCheck("example.org", addresses, None if addresses else "Name or service not known", public_ip)
    assert check.summary() == summary
    assert check.points_here == summary.endswith(": this machine.")
