"""dnsmasq on loopback serving a fixed test zone, for doctor and discovery tests through real DNS.

One dnsmasq per session (`dns_zone`, a session fixture, registered as a plugin in
tests/conftest.py: a test asks for it by name, no import needed; an import into a test module
would start a second dnsmasq for that module). The
zone's SRV records need the ports the test servers will listen on, and dnsmasq cannot change
its records while it runs, so the ports are chosen before it starts (`DnsZone.ports`) and each
test starts its server on the port of its name.

Names (all under doctor.test, for which dnsmasq is authoritative: anything else in it is
NXDOMAIN, not REFUSED):
- healthy: `_matrix-fed._tcp.healthy.doctor.test` -> fed.healthy.doctor.test:<ports["healthy"]>
- nosrv: no SRV, A 127.0.0.3 (an address where nothing listens on 8448)
- cname: SRV -> alias.cname.doctor.test, a CNAME of fed.cname.doctor.test
- legacy: only the deprecated `_matrix._tcp` SRV -> fed.legacy.doctor.test
- noaddr: SRV -> gone.noaddr.doctor.test, which has no A or AAAA record
Every fed.* target is A 127.0.0.1, and so are healthy and cname themselves (their
/.well-known/matrix/server on 127.0.0.1:443 finds nothing listening: no delegation).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import pytest

from tests.interop.synapse_server import free_port
from tests.peers import find_program, peer_missing

__all__ = ["ZONE", "DnsZone", "dns_zone"]

ZONE = "doctor.test"
_SRV_NAMES = ("healthy", "cname", "legacy", "noaddr")


@dataclass(frozen=True)
class DnsZone:
    port: int  # dnsmasq's, on 127.0.0.1 (UDP and TCP)
    ports: dict[str, int]  # the SRV port of each name in _SRV_NAMES

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def name(self, short: str) -> str:
        return f"{short}.{ZONE}"


def _arguments(port: int, ports: dict[str, int]) -> list[str]:
    z = ZONE
    return [
        "--no-daemon", f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
        "--no-resolv", "--no-hosts", "--conf-file=/dev/null", f"--local=/{z}/",
        # --host-record, not --address: --address answers for every subdomain too, and a
        # CNAME's target must be a name dnsmasq holds a record of.
        f"--host-record=healthy.{z},127.0.0.1",
        f"--host-record=fed.healthy.{z},127.0.0.1",
        f"--srv-host=_matrix-fed._tcp.healthy.{z},fed.healthy.{z},{ports['healthy']},10,0",
        f"--host-record=nosrv.{z},127.0.0.3",
        f"--host-record=cname.{z},127.0.0.1",
        f"--host-record=fed.cname.{z},127.0.0.1",
        f"--cname=alias.cname.{z},fed.cname.{z}",
        f"--srv-host=_matrix-fed._tcp.cname.{z},alias.cname.{z},{ports['cname']},10,0",
        f"--host-record=fed.legacy.{z},127.0.0.1",
        f"--srv-host=_matrix._tcp.legacy.{z},fed.legacy.{z},{ports['legacy']},10,0",
        f"--srv-host=_matrix-fed._tcp.noaddr.{z},gone.noaddr.{z},{ports['noaddr']},10,0",
    ]


async def _answers(port: int) -> bool:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], port, 0.5
    try:
        await resolver.resolve(f"healthy.{ZONE}", "A")
    except dns.exception.DNSException:
        return False
    return True


@pytest.fixture(scope="session")
def dns_zone() -> Iterator[DnsZone]:
    program = find_program("dnsmasq")
    if program is None:
        peer_missing("dnsmasq is not installed (Debian: dnsmasq-base)")
    zone = DnsZone(free_port(), {name: free_port() for name in _SRV_NAMES})
    process = subprocess.Popen(
        [program, *_arguments(zone.port, zone.ports)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not asyncio.run(_answers(zone.port)):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate()
                pytest.fail(f"dnsmasq did not start: {err.decode(errors='replace')}", pytrace=False)
            time.sleep(0.05)
        yield zone
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
