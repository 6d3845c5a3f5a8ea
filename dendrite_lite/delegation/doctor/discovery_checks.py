"""Findings about how a server name resolves (server-server-api.md §Resolving server names).

The resolution itself is discovery.py's, the one federation uses; these functions read its
`Resolution.steps` and the well-known responses it received (recorded by `WellKnownTrace`, an
httpx response hook) and say what is wrong and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from dendrite_lite.config import is_valid_server_name
from dendrite_lite.delegation.discovery import (
    DEFAULT_PORT,
    Resolution,
    SrvRecord,
    cache_period_from_headers,
    is_ip_literal,
    split_server_name,
)
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor.network import DoctorNetwork

__all__ = ["WellKnownTrace", "check_server_name", "srv_findings", "well_known_findings"]

WELL_KNOWN_PATH = "/.well-known/matrix/server"
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(slots=True)
class WellKnownTrace:
    """Every response the well-known client received, redirects included: (url, status,
    headers). The client is discovery's own, used for nothing else."""

    responses: list[tuple[str, int, httpx.Headers]] = field(default_factory=list)

    async def hook(self, response: httpx.Response) -> None:
        self.responses.append((str(response.request.url), response.status_code, response.headers))


def check_server_name(server_name: str) -> Finding:
    if not is_valid_server_name(server_name):
        return Finding(
            "server_name", "server name", Status.FAIL,
            f"{server_name!r} is not a valid server name.",
            "Use a hostname or IP literal with an optional port, e.g. example.org or"
            " matrix.example.org:8448 (spec appendices §Server Name); it is server.server_name"
            " in the config and cannot change once users exist.",
        )
    host, port = split_server_name(server_name)
    kind = "an IP literal" if is_ip_literal(host) else "a hostname"
    with_port = f" with the explicit port {port}" if port is not None else ""
    return Finding("server_name", "server name", Status.OK, f"{server_name!r} is {kind}{with_port}.")


def _example_well_known(host: str) -> str:
    return f'{{"m.server": "matrix.{host}:443"}}'


def well_known_findings(resolution: Resolution, trace: WellKnownTrace) -> list[Finding]:
    steps = {s.step: s for s in resolution.steps}
    step = steps.get("well_known")
    host, _ = split_server_name(resolution.server_name)
    url = f"https://{host}{WELL_KNOWN_PATH}"
    if step is None:
        return [Finding(
            "well_known", "delegation", Status.OK,
            f"Not consulted: {steps['server_name'].detail}, so peers connect to it directly.",
        )]
    last = trace.responses[-1] if trace.responses else None
    out: list[Finding] = []
    if len(trace.responses) > 1:
        chain = " -> ".join(u for u, _, _ in trace.responses)
        # Redirects are allowed; they are the problem only when they never end in an answer.
        endless = last is not None and last[1] in _REDIRECTS
        out.append(Finding(
            "well_known.redirects", "delegation", Status.FAIL if endless else Status.OK,
            f"{url} redirects: {chain}.",
            f"Serve {url} directly with status 200, or redirect once to an https:// URL that"
            " answers 200." if endless else None,
        ))
    if step.outcome == "used":
        out.append(Finding("well_known", "delegation", Status.OK, f"{url}: {step.detail}."))
        assert last is not None
        out.append(_cache_finding(url, last[2]))
        return out
    fix_file = (
        f"Serve {url} with status 200 and the JSON content {_example_well_known(host)} (the host"
        f" and port where federation listens), or delete it to use SRV records or port {DEFAULT_PORT}."
    )
    if last is None or last[1] == 404:
        # No delegation is a valid setup: the server is then found by SRV or on port 8448.
        what = "answers 404" if last is not None else "has no HTTPS answer"
        out.append(Finding(
            "well_known", "delegation", Status.OK,
            f"{url} {what}: no delegation, peers look up SRV records, else port {DEFAULT_PORT}"
            f" ({step.detail}).",
        ))
    elif last[1] in _REDIRECTS or last[1] == 200:
        # A document that is there but unusable: peers silently fall back, to the wrong place.
        out.append(Finding("well_known", "delegation", Status.FAIL, f"{step.detail}.", fix_file))
    else:
        out.append(Finding(
            "well_known", "delegation", Status.WARN,
            f"{step.detail}: peers treat this as no delegation and cache the error for up to an hour.",
            fix_file,
        ))
    return out


def _cache_finding(url: str, headers: httpx.Headers) -> Finding:
    period = cache_period_from_headers(headers)
    if period is None:
        return Finding(
            "well_known.cache", "delegation", Status.OK,
            "No Cache-Control header: peers cache the delegation for their default (24 hours).",
        )
    if period == 0:
        return Finding(
            "well_known.cache", "delegation", Status.WARN,
            f"{url} forbids caching (Cache-Control: {headers.get('cache-control')}), so peers"
            " fetch it before every connection or apply their own floor.",
            "Send the header `Cache-Control: max-age=86400` with the file.",
        )
    return Finding(
        "well_known.cache", "delegation", Status.OK, f"Peers may cache the delegation for {int(period)} s."
    )


async def srv_findings(resolution: Resolution, network: DoctorNetwork) -> list[Finding]:
    srv_steps = [s for s in resolution.steps if s.step.startswith("srv:")]
    if not srv_steps:
        return [Finding(
            "srv", "dns", Status.OK,
            "SRV records are not consulted: the (delegated) server name has an explicit port or is an IP.",
        )]
    host = resolution.host_header  # the name the SRV records were looked up for
    out: list[Finding] = []
    for step in srv_steps:
        service = step.step.removeprefix("srv:")
        if step.outcome == "error":
            out.append(Finding(
                f"srv.{service.strip('_').split('.')[0]}", "dns", Status.WARN,
                f"{step.detail}; peers treat it as no record, so they may connect elsewhere.",
                f"Make the name servers of {host} answer SRV queries for {service}.{host}"
                " (NXDOMAIN or an empty answer when there is none).",
            ))
        elif step.outcome == "used" and service == "_matrix._tcp":
            records = await _records(network, f"{service}.{host}")
            lines = "\n".join(
                f"_matrix-fed._tcp.{host}. 3600 IN SRV {r.priority} {r.weight} {r.port} {r.target}."
                for r in records
            )
            out.append(Finding(
                "srv.matrix", "dns", Status.WARN,
                f"Only the deprecated SRV record {service}.{host} is published ({step.detail});"
                " peers following newer spec versions may stop reading it.",
                f"Publish the same record(s) under _matrix-fed._tcp:\n{lines}",
            ))
        elif step.outcome == "used":
            out.append(Finding("srv.matrix-fed", "dns", Status.OK, f"SRV {step.detail}."))
    if resolution.steps[-1].step == "default":
        out.append(Finding(
            "srv", "dns", Status.OK,
            f"No SRV record for {host}: peers connect to {host}:{DEFAULT_PORT}.",
        ))
    if any(s.outcome == "used" for s in srv_steps):
        out += await _cname_findings(resolution, network)
    return out


async def _records(network: DoctorNetwork, name: str) -> list[SrvRecord]:
    try:
        return [r for r in await network.srv.resolve_srv(name) if r.target]
    except LookupError:
        return []


async def _cname_findings(resolution: Resolution, network: DoctorNetwork) -> list[Finding]:
    out = []
    for target in resolution.targets:
        if is_ip_literal(target.host):
            continue
        canonical = await network.cname.cname_of(target.host)
        if canonical is not None:
            # The spec (§Resolving server names) and RFC 2782 forbid it: a FAIL, though many
            # peers' resolvers follow the alias anyway, because the ones that do not cannot
            # reach the server at all.
            out.append(Finding(
                "srv.target_cname", "dns", Status.FAIL,
                f"The SRV target {target.host} is a CNAME (alias of {canonical}), which the spec"
                " forbids (RFC 2782): peers whose resolvers refuse aliases cannot reach the server.",
                f"Point the SRV record at {canonical}. instead of {target.host}.",
            ))
    return out
