"""`diagnose(server_name, network, local)`: every check, in the order a peer meets them, then
the client discovery checks. With `local` (the doctor runs for the configured server) also what
only that server's own doctor can check: a request signed with its key to itself through its
public address, its ports on server.public_ip, its outbox, its TURN server and LiveKit SFU
(calls), its certificate files and its local setup.

A check that cannot run because an earlier one failed is not run (its prerequisite's FAIL
already says what to fix), except the endpoint checks: they go through the federation client,
which tries every target itself, so its error is the one federation would log.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dendrite_lite.crypto.keys import KeyFileError, load_signing_key, new_server_key
from dendrite_lite.delegation.discovery import Resolution, ServerDiscovery
from dendrite_lite.delegation.doctor.appservice_checks import appservice_findings
from dendrite_lite.delegation.doctor.cert_checks import certificate_findings
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
from dendrite_lite.delegation.doctor.email_checks import email_findings
from dendrite_lite.delegation.doctor.livekit_checks import livekit_findings
from dendrite_lite.delegation.doctor.oidc_checks import oidc_findings
from dendrite_lite.delegation.doctor.local_checks import LocalSetup, local_findings
from dendrite_lite.delegation.doctor.network import DoctorNetwork
from dendrite_lite.delegation.doctor.outbox_checks import outbox_findings
from dendrite_lite.delegation.doctor.ports import port_findings
from dendrite_lite.delegation.doctor.self_request import self_request_findings
from dendrite_lite.delegation.doctor.tls import address_findings, tls_findings
from dendrite_lite.delegation.doctor.turn_checks import turn_findings
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
        if local is not None:
            findings += await _signed_request(local, discovery, network, dates)
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
            findings += await _local_only(local, resolution, network)
    finally:
        await client.aclose()  # and the discovery's client
    return findings


async def _signed_request(
    local: LocalSetup, discovery: ServerDiscovery, network: DoctorNetwork, dates: DateTrace
) -> list[Finding]:
    config = local.config
    try:
        key = load_signing_key(config.signing_key_path)
    except KeyFileError as e:
        # local.signing_key says what to do about the key itself.
        return [Finding("federation.signed_request", "federation", Status.WARN,
                        f"No signed request was tried: {e}.", "Create it: `dendrite-lite generate-keys`.")]
    client = FederationClient(
        config.server.server_name, key, discovery=discovery, ssl_context=network.ssl_context,
        transport=network.transport(), timeout_s=network.timeout_s,
    )
    client.http.event_hooks["response"].append(dates.hook)
    try:
        return await self_request_findings(client, config)
    finally:
        await client.http.aclose()  # not client.aclose(): the discovery's client is shared


async def _local_only(local: LocalSetup, resolution: Resolution, network: DoctorNetwork) -> list[Finding]:
    config = local.config
    out = await port_findings(config, resolution.targets, timeout_s=min(network.timeout_s, 3.0))
    out += await outbox_findings(config.database_path, int(network.clock() * 1000))
    out += await appservice_findings(config, int(network.clock() * 1000))
    out += await turn_findings(config.turn, config.server.server_name, network)
    out += await livekit_findings(config.calls, network)
    out += await email_findings(config.email, config.server.server_name, min(network.timeout_s, 10.0))
    out += await oidc_findings(config)
    # The names the certificate files must cover: what peers check, and the client API's host.
    names = [resolution.tls_name] if config.federation_tls else []
    client_host = urlsplit(config.public_baseurl).hostname
    if config.client_tls and client_host:
        names.append(client_host)
    out += certificate_findings(config, names, network.clock())
    return out + local_findings(local, resolution)
