"""Resolving a server name to where to connect (server-server-api.md §Resolving server names).

`ServerDiscovery.resolve(server_name)` walks the spec's steps in order and returns a
`Resolution`: the addresses to try, the `Host` header, and the name the TLS certificate must
be valid for (sent as SNI unless it is an IP address). The result also lists every step taken
(`steps`), so `dendrite-lite doctor` can show why a name resolved the way it did; nothing here
prints or logs for the user.

The two network lookups are injected: an `httpx.AsyncClient` (outbound_http.py) for
`/.well-known/matrix/server` and an `SrvResolver` for DNS SRV records (dnspython by default), so
tests use fakes of both (httpx.MockTransport for the first).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin

from dendrite_lite.config import is_valid_server_name

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_PORT",
    "DiscoveryError",
    "DiscoveryStep",
    "DnsSrvResolver",
    "Resolution",
    "ServerDiscovery",
    "SrvRecord",
    "SrvResolver",
    "Target",
    "WellKnownResult",
    "cache_period_from_headers",
    "is_ip_literal",
    "new_dns_resolver",
    "order_srv_records",
    "split_server_name",
]

DEFAULT_PORT = 8448

# Spec: cache well-known answers per Cache-Control, default 24 h, at most 48 h; errors for up to
# an hour with exponential backoff. The 5 minute floor stops a peer with `max-age=0` from making
# us fetch its well-known on every request.
WELL_KNOWN_DEFAULT_CACHE_S = 24 * 3600
WELL_KNOWN_MAX_CACHE_S = 48 * 3600
WELL_KNOWN_MIN_CACHE_S = 5 * 60
WELL_KNOWN_ERROR_CACHE_FIRST_S = 2 * 60
WELL_KNOWN_ERROR_CACHE_MAX_S = 3600
# A well-known document is a few dozen bytes; anything big is a misconfiguration or an attack.
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_TIMEOUT_S = 10.0
WELL_KNOWN_MAX_REDIRECTS = 10


class DiscoveryError(Exception):
    """A server name that cannot be resolved at all (it is not a valid server name)."""


@dataclass(frozen=True, slots=True)
class DiscoveryStep:
    """One step of the resolution, for `doctor`: which rule, what happened, in words."""

    step: str  # "server_name" | "well_known" | "srv:_matrix-fed._tcp" | "srv:_matrix._tcp" | "default"
    outcome: str  # "used" | "not_found" | "error" | "skipped"
    detail: str


@dataclass(frozen=True, slots=True)
class Target:
    """An address to connect to: a hostname (resolved by A/AAAA at connect time) or an IP."""

    host: str  # without IPv6 brackets
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Resolution:
    server_name: str
    targets: tuple[Target, ...]  # in the order to try (several only for SRV)
    host_header: str
    tls_name: str  # the certificate must be valid for this name (or IP)
    steps: tuple[DiscoveryStep, ...] = ()

    @property
    def sni(self) -> str | None:
        """The SNI to send: none for an IP, as the spec's §TLS says."""
        return None if is_ip_literal(self.tls_name) else self.tls_name

    def url(self, path: str, target: Target | None = None) -> str:
        return f"https://{(target or self.targets[0]).netloc}{path}"


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # without the trailing dot; "." (no service) arrives as ""


class SrvResolver(Protocol):
    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        """The SRV records of `name`; [] when there are none. May raise OSError-like errors
        (timeouts, SERVFAIL) as `LookupError`."""
        ...


class DnsSrvResolver:
    """SRV lookups with dnspython's async resolver and its TTL-respecting cache.

    `nameservers`/`port` default to the system's resolv.conf (tests point them at a local
    server). dnspython is imported at the first lookup, not before: it costs 2.6 MB of RSS,
    and a server that federates only with IP literals or names with explicit ports never
    looks up SRV records."""

    def __init__(self, nameservers: list[str] | None = None, port: int = 53) -> None:
        self._nameservers = nameservers
        self._port = port
        self._resolver: Any = None

    def _dns_resolver(self) -> Any:
        if self._resolver is None:
            import dns.resolver

            self._resolver = new_dns_resolver(self._nameservers, self._port)
            self._resolver.cache = dns.resolver.Cache()
        return self._resolver

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        import dns.exception
        import dns.resolver

        try:
            answer = await self._dns_resolver().resolve(name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise LookupError(f"SRV lookup for {name} failed: {e}") from None
        records = []
        for r in answer:
            target = r.target.to_text(omit_final_dot=True)
            records.append(SrvRecord(r.priority, r.weight, r.port, "" if target == "." else target))
        return records


def new_dns_resolver(nameservers: list[str] | None = None, port: int = 53) -> Any:
    """A dnspython async resolver: the system's (resolv.conf) unless `nameservers` are given,
    e.g. a test DNS server on 127.0.0.1:<port>. Every DNS lookup of discovery and doctor
    builds its resolver here, so one setting points all of them at the same server."""
    import dns.asyncresolver

    resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
    if nameservers is not None:
        resolver.nameservers = nameservers
        resolver.port = port
    resolver.lifetime = 5.0
    return resolver


@dataclass(frozen=True, slots=True)
class WellKnownResult:
    """The outcome of fetching /.well-known/matrix/server: `server` is the valid `m.server`
    value, or None with `error` saying why not."""

    server: str | None
    error: str | None
    expires_at: float  # cache until this time (seconds since the epoch)
    from_cache: bool = False


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """(host without brackets, port or None); DiscoveryError for an invalid server name."""
    if not is_valid_server_name(server_name):
        raise DiscoveryError(f"{server_name!r} is not a valid server name")
    if server_name.startswith("["):
        end = server_name.index("]")
        host, rest = server_name[1:end], server_name[end + 1 :]
        return host, int(rest[1:]) if rest else None
    host, _, port = server_name.partition(":")
    return host, int(port) if port else None


def order_srv_records(records: Sequence[SrvRecord], rng: random.Random | None = None) -> list[SrvRecord]:
    """RFC 2782 order: lowest priority first; within a priority, a weighted random shuffle."""
    rng = rng or random.Random()
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = group[rng.randrange(len(group))]
            else:
                point = rng.uniform(0, total)
                acc = 0
                pick = group[-1]
                for r in group:
                    acc += r.weight
                    if acc >= point:
                        pick = r
                        break
            out.append(pick)
            group.remove(pick)
    return out


_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def cache_period_from_headers(headers: Mapping[str, str]) -> float | None:
    """Seconds the response may be cached per Cache-Control, 0 for no-store/no-cache, or None
    when the headers say nothing (then the caller's default applies)."""
    cc = headers.get("cache-control", "")
    directives = {d.strip().split("=", 1)[0].lower() for d in cc.split(",") if d.strip()}
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    m = _MAX_AGE_RE.search(cc)
    if m:
        return float(m[1])
    return None


def _clamp_cache(period: float | None) -> float:
    if period is None:
        return WELL_KNOWN_DEFAULT_CACHE_S
    return min(max(period, WELL_KNOWN_MIN_CACHE_S), WELL_KNOWN_MAX_CACHE_S)


@dataclass(slots=True)
class ServerDiscovery:
    """Resolves server names; keeps the well-known cache (in memory: a restart refetches)."""

    http: httpx.AsyncClient  # used only for /.well-known/matrix/server
    srv: SrvResolver
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    _well_known: dict[str, WellKnownResult] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)  # consecutive, per hostname

    async def resolve(self, server_name: str) -> Resolution:
        host, port = split_server_name(server_name)
        # Steps 1 and 2: an IP literal or an explicit port needs no lookup at all.
        if is_ip_literal(host) or port is not None:
            why = "an IP literal" if is_ip_literal(host) else "a hostname with an explicit port"
            step = DiscoveryStep("server_name", "used", f"{server_name!r} is {why}")
            return Resolution(
                server_name, (Target(host, port or DEFAULT_PORT),), server_name, host, (step,)
            )
        steps = [DiscoveryStep("server_name", "used", f"{server_name!r} is a hostname without a port")]
        wk = await self.well_known(host)
        if wk.server is not None:
            cached = " (cached)" if wk.from_cache else ""
            steps.append(DiscoveryStep("well_known", "used", f"m.server is {wk.server!r}{cached}"))
            return await self._resolve_delegated(server_name, wk.server, steps)
        steps.append(DiscoveryStep("well_known", "not_found", wk.error or "no delegation"))
        # Steps 4-6: SRV for the original hostname, else port 8448; Host and certificate are
        # always the hostname (the SRV target has not proven it may speak for it).
        return await self._resolve_srv_or_default(server_name, host, host, steps)

    async def _resolve_delegated(
        self, server_name: str, delegated: str, steps: list[DiscoveryStep]
    ) -> Resolution:
        host, port = split_server_name(delegated)
        if is_ip_literal(host) or port is not None:
            # 3.1 / 3.2: Host header is the delegated name, with its port if it had one.
            return Resolution(
                server_name, (Target(host, port or DEFAULT_PORT),), delegated, host, tuple(steps)
            )
        return await self._resolve_srv_or_default(server_name, host, host, steps)

    async def _resolve_srv_or_default(
        self, server_name: str, host: str, tls_name: str, steps: list[DiscoveryStep]
    ) -> Resolution:
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            label = f"srv:{service}"
            try:
                records = await self.srv.resolve_srv(f"{service}.{host}")
            except LookupError as e:
                steps.append(DiscoveryStep(label, "error", str(e)))
                continue
            usable = [r for r in records if r.target not in ("", ".")]
            if not usable:
                what = "only the '.' target (no service)" if records else "no records"
                steps.append(DiscoveryStep(label, "not_found", f"{service}.{host}: {what}"))
                continue
            ordered = order_srv_records(usable, self.rng)
            targets = tuple(Target(r.target, r.port) for r in ordered)
            listed = ", ".join(t.netloc for t in targets)
            steps.append(DiscoveryStep(label, "used", f"{service}.{host} -> {listed}"))
            return Resolution(server_name, targets, host, tls_name, tuple(steps))
        steps.append(DiscoveryStep("default", "used", f"{host}:{DEFAULT_PORT}"))
        return Resolution(server_name, (Target(host, DEFAULT_PORT),), host, tls_name, tuple(steps))

    async def well_known(self, hostname: str) -> WellKnownResult:
        """The (cached) `m.server` of https://<hostname>/.well-known/matrix/server."""
        now = self.clock()
        cached = self._well_known.get(hostname)
        if cached is not None and cached.expires_at > now:
            return WellKnownResult(cached.server, cached.error, cached.expires_at, from_cache=True)
        server, error, period = await self._fetch_well_known(hostname)
        if error is None:
            self._failures.pop(hostname, None)
            expires = now + _clamp_cache(period)
        else:
            # Back off exponentially for repeated failures, never past an hour.
            failures = self._failures[hostname] = self._failures.get(hostname, 0) + 1
            backoff = WELL_KNOWN_ERROR_CACHE_FIRST_S * 2 ** min(failures - 1, 16)
            expires = now + min(backoff, WELL_KNOWN_ERROR_CACHE_MAX_S)
        result = WellKnownResult(server, error, expires)
        self._well_known[hostname] = result
        return result

    async def _fetch_well_known(self, hostname: str) -> tuple[str | None, str | None, float | None]:
        """(m.server, None, cache period) or (None, error, None)."""
        from dendrite_lite.outbound_http import HttpError, ResponseTooLarge, fetch

        url = f"https://{hostname}/.well-known/matrix/server"
        seen = {url}
        for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
            try:
                answer = await fetch(
                    self.http, "GET", url, max_body_bytes=WELL_KNOWN_MAX_BYTES,
                    timeout_s=WELL_KNOWN_TIMEOUT_S, connect_timeout_s=WELL_KNOWN_TIMEOUT_S,
                )
            except ResponseTooLarge:
                return None, f"{url}: response larger than {WELL_KNOWN_MAX_BYTES} bytes", None
            except HttpError as e:
                return None, f"{url}: {e}", None
            status, headers, body = answer.status, answer.headers, answer.body
            if status in (301, 302, 303, 307, 308) and "location" in headers:
                url = urljoin(url, headers["location"])
                if url in seen:
                    return None, f"redirect loop at {url}", None
                if not url.startswith("https://"):
                    return None, f"redirect to a non-https URL {url}", None
                seen.add(url)
                continue
            if status != 200:
                return None, f"{url}: HTTP {status}", None
            return (*_parse_well_known(url, body), cache_period_from_headers(headers))
        return None, f"more than {WELL_KNOWN_MAX_REDIRECTS} redirects", None

def _parse_well_known(url: str, body: bytes) -> tuple[str | None, str | None]:
    # The spec says to assume JSON whatever the Content-Type.
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, f"{url}: response is not JSON"
    if not isinstance(data, dict):
        return None, f"{url}: response is not a JSON object"
    server = data.get("m.server")
    if not isinstance(server, str):
        return None, f"{url}: no m.server string"
    if not is_valid_server_name(server):
        return None, f"{url}: m.server {server!r} is not a valid server name"
    return server, None
