"""The DNS and delegation checks `dendrite-lite init` runs while the user answers: does a name
point at this machine, and what delegation does the server name publish today.

Both go through the doctor's `DoctorNetwork` and discovery's `ServerDiscovery`, the code
`doctor` and federation resolve with, so the wizard sees what other servers will see, and a
test (or `--dns-server`) points every lookup, the well-known request's included, at one DNS
server. Results carry a one-line summary; nothing here prints.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dendrite_lite.delegation.discovery import Resolution, ServerDiscovery
from dendrite_lite.delegation.doctor import DoctorNetwork
from dendrite_lite.outbound_http import new_client

__all__ = ["AddressCheck", "DelegationFound", "NameChecker"]

@dataclass(frozen=True)
class AddressCheck:
    host: str
    addresses: tuple[str, ...]
    error: str | None  # why there are no addresses
    public_ip: str  # "" when unknown

    @property
    def points_here(self) -> bool:
        if not self.public_ip:
            return False
        here = ipaddress.ip_address(self.public_ip)
        return any(ipaddress.ip_address(a) == here for a in self.addresses)

    def summary(self) -> str:
        if not self.addresses:
            return f"{self.host} has no A/AAAA record yet ({self.error})."
        found = f"{self.host} resolves to {', '.join(self.addresses)}"
        if not self.public_ip:
            return f"{found} (this machine's public IP is unknown, so whether that is here is too)."
        if self.points_here:
            return f"{found}: this machine."
        loopback = [ipaddress.ip_address(a).is_loopback for a in (*self.addresses, self.public_ip)]
        if all(loopback[:-1]) and not loopback[-1]:
            # Debian's /etc/hosts maps the machine's own name to 127.0.1.1: not what peers see.
            return f"{found}, a loopback address (/etc/hosts?), not what other servers see in DNS."
        return f"{found}, not this machine ({self.public_ip})."


@dataclass(frozen=True)
class DelegationFound:
    """What the server name publishes today: kind is "well-known", "srv" or "none"."""

    kind: str
    target: str  # "host:port" other servers connect to (the first SRV target)
    summary: str


def _delegation_found(resolution: Resolution) -> DelegationFound:
    used = {s.step: s for s in resolution.steps if s.outcome == "used"}
    target = resolution.targets[0].netloc
    host = resolution.server_name
    if len(resolution.steps) == 1:  # an IP literal or an explicit port: nothing to look up
        return DelegationFound("none", target, f"{resolution.steps[0].detail}: other servers connect to {target}.")
    if "well_known" in used:
        return DelegationFound(
            "well-known", resolution.host_header,
            f"https://{host}/.well-known/matrix/server delegates to {resolution.host_header}.",
        )
    srv = next((s for name, s in used.items() if name.startswith("srv:")), None)
    if srv is not None:
        return DelegationFound("srv", target, f"SRV {srv.detail}.")
    return DelegationFound(
        "none", target,
        f"{host} publishes no delegation (no .well-known, no SRV): other servers connect to {target}.",
    )


class NameChecker:
    """The wizard's lookups, through `network` (DoctorNetwork.default() for the real world)."""

    def __init__(self, network: DoctorNetwork) -> None:
        self._network = network

    async def addresses(self, host: str, public_ip: str) -> AddressCheck:
        try:
            found = await self._network.addresses(host, 443)
        except (OSError, TimeoutError) as e:
            return AddressCheck(host, (), _lookup_error(e), public_ip)
        unique = dict.fromkeys(ip for ip, _ in found)
        return AddressCheck(host, tuple(unique), None, public_ip)

    async def delegation(self, server_name: str) -> DelegationFound:
        http = new_client(self._network.transport())
        try:
            resolution = await ServerDiscovery(http, self._network.srv).resolve(server_name)
        finally:
            await http.aclose()
        return _delegation_found(resolution)


def _lookup_error(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "the DNS lookup timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror  # getaddrinfo's "Name or service not known"
    return str(e) or type(e).__name__
