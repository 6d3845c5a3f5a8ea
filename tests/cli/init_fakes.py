"""Probes for in-process runs of the interactive `dendrite-lite init`: no DNS, no public IP
lookup, no ACME directory. Names resolve as `addresses` says (unknown names have no record),
no delegation is published, and every port is in the state `ports` says (default FREE)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from dendrite_lite.cli import init_questions
from dendrite_lite.cli.init_questions import WizardProbes
from dendrite_lite.delegation.doctor.network import Address
from dendrite_lite.delegation.local_ports import PortState
from dendrite_lite.delegation.name_checks import AddressCheck, DelegationFound
from dendrite_lite.delegation.public_ip import DetectedIp

__all__ = ["TERMS_URL", "FakeNames", "fake_probes"]

TERMS_URL = "https://ca.test/terms-2026.pdf"


class FakeNames:
    def __init__(self, addresses: Mapping[str, tuple[str, ...]]) -> None:
        self._addresses = addresses

    async def addresses(self, host: str, public_ip: str) -> AddressCheck:
        found = self._addresses.get(host, ())
        return AddressCheck(host, found, None if found else "Name or service not known", public_ip)

    async def delegation(self, server_name: str) -> DelegationFound:
        return DelegationFound(
            "none", f"{server_name}:8448", f"{server_name} publishes no delegation."
        )


def fake_probes(
    monkeypatch: pytest.MonkeyPatch,
    *,
    public_ip: str = "",
    addresses: Mapping[str, tuple[str, ...]] | None = None,
    ports: Mapping[str, PortState] | None = None,
) -> None:
    """Make `init` use these probes, whatever its --dns-server/--no-detect flags say."""
    probes = WizardProbes(
        FakeNames(addresses or {}),  # type: ignore[arg-type]
        lambda: DetectedIp(public_ip, "faked" if public_ip else "not detected (faked)"),
        lambda address: (ports or {}).get(address, PortState.FREE),
        lambda directory, ca_file: (TERMS_URL, None),
    )

    def default(dns_server: Address | None, *, detect: bool, lookup: bool) -> WizardProbes:
        return probes

    monkeypatch.setattr(init_questions.WizardProbes, "default", staticmethod(default))
