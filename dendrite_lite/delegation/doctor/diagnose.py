"""`diagnose(server_name, network, local)`: every check, in the order a peer meets them, then
the client discovery checks, then (with `local`, when the doctor runs for the configured
server) the local setup checks.

A check that cannot run because an earlier one failed is not run (its prerequisite's FAIL
already says what to fix), except the endpoint checks: they go through the federation client,
which tries every target itself, so its error is the one federation would log.
"""

from __future__ import annotations

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.delegation.discovery import ServerDiscovery
from dendrite_lite.delegation.doctor.client_checks import client_findings
from dendrite_lite.delegation.doctor.discovery_checks import (
    WellKnownTrace,
    check_server_name,
    srv_findings,
    well_known_findings,
)
from dendrite_lite.delegation.doctor.endpoints import (
    DateTrace,
    clock_finding,
    key_findings,
    version_findings,
)
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor.local_checks import LocalSetup, local_findings
from dendrite_lite.delegation.doctor.network import DoctorNetwork
from dendrite_lite.delegation.doctor.tls import address_findings, tls_findings
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.outbound_http import new_client

__all__ = ["diagnose"]


async def diagnose(server_name: str, network: DoctorNetwork, local: LocalSetup | None = None) -> list[Finding]:
    first = check_server_name(server_name)
    if first.status is Status.FAIL:
        return [first]
    findings = [first]
    well_known = WellKnownTrace()
    wk_http = new_client(network.transport())
    wk_http.event_hooks["response"].append(well_known.hook)
    discovery = ServerDiscovery(wk_http, network.srv, clock=network.clock)
    # Requests are unsigned (the key and version endpoints need no auth), so the client's own
    # name and key are never used; a throwaway key keeps the doctor away from the real one.
    client = FederationClient(
        "doctor.invalid", new_server_key(), discovery=discovery, ssl_context=network.ssl_context,
        transport=network.transport(), timeout_s=network.timeout_s,
    )
    dates = DateTrace(network.clock)
    client.http.event_hooks["response"].append(dates.hook)
    try:
        resolution = await discovery.resolve(server_name)
        findings += well_known_findings(resolution, well_known)
        findings += await srv_findings(resolution, network)
        dns, pairs = await address_findings(resolution, network)
        findings += dns
        for target, address in pairs:
            findings += await tls_findings(resolution, target, address, network)
        findings += await key_findings(client, server_name, int(network.clock() * 1000))
        findings += await version_findings(client, server_name)
        findings.append(clock_finding(dates))
        # Clients go to the server name's hostname too, but with their own rules (no SRV, no
        # m.server): a client of its own, with the same trust and overrides.
        client_http = new_client(network.transport())
        try:
            findings += await client_findings(
                client_http, server_name, timeout_s=network.timeout_s,
                public_baseurl=local.config.public_baseurl if local is not None else None,
            )
        finally:
            await client_http.aclose()
        if local is not None:
            delegated = [resolution.tls_name, *(t.host for t in resolution.targets)]
            findings += local_findings(local, delegated)
    finally:
        await client.aclose()  # and the discovery's client
    return findings
