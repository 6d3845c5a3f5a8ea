"""Server name resolution (server-server-api.md §Resolving server names) with a mock HTTP
transport for /.well-known/matrix/server and a dict of SRV records."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import httpx
import pytest

from dendrite_lite.delegation.discovery import (
    DEFAULT_PORT,
    WELL_KNOWN_MAX_BYTES,
    DiscoveryError,
    Resolution,
    ServerDiscovery,
    SrvRecord,
    Target,
    cache_period_from_headers,
    order_srv_records,
    split_server_name,
)
from dendrite_lite.outbound_http import new_client


class FakeSrv:
    def __init__(self, records: dict[str, list[SrvRecord]] | None = None, fail: set[str] | None = None):
        self.records = records or {}
        self.fail = fail or set()
        self.queries: list[str] = []

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        self.queries.append(name)
        if name in self.fail:
            raise LookupError(f"SRV lookup for {name} failed: SERVFAIL")
        return self.records.get(name, [])


Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(handler: Handler, srv: FakeSrv | None = None) -> tuple[ServerDiscovery, list[str], Clock]:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return handler(request)

    clock = Clock()
    http = new_client(httpx.MockTransport(record))
    return ServerDiscovery(http, srv or FakeSrv(), clock=clock, rng=random.Random(1)), seen, clock


def well_known(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=raw, headers=headers or {})


def not_found(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"errcode": "M_NOT_FOUND"})


def shape(r: Resolution) -> tuple[list[tuple[str, int]], str, str, str | None]:
    return [(t.host, t.port) for t in r.targets], r.host_header, r.tls_name, r.sni


# --- Step 1: IP literals -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, expected",
    [
        ("1.2.3.4", ([("1.2.3.4", 8448)], "1.2.3.4", "1.2.3.4", None)),
        ("1.2.3.4:1234", ([("1.2.3.4", 1234)], "1.2.3.4:1234", "1.2.3.4", None)),
        ("[::1]", ([("::1", 8448)], "[::1]", "::1", None)),
        ("[2001:db8::1]:443", ([("2001:db8::1", 443)], "[2001:db8::1]:443", "2001:db8::1", None)),
    ],
)
async def test_ip_literal_needs_no_lookup(name: str, expected: tuple) -> None:
    d, seen, _ = make(not_found)
    r = await d.resolve(name)
    assert shape(r) == expected
    assert seen == []  # no well-known, no SRV
    assert [s.step for s in r.steps] == ["server_name"]


async def test_ipv6_url_has_brackets() -> None:
    d, _, _ = make(not_found)
    r = await d.resolve("[::1]:8448")
    assert r.url("/_matrix/key/v2/server") == "https://[::1]:8448/_matrix/key/v2/server"


# --- Step 2: explicit port -------------------------------------------------------------------

async def test_hostname_with_port_skips_well_known_and_srv() -> None:
    srv = FakeSrv()
    d, seen, _ = make(not_found, srv)
    r = await d.resolve("example.org:8000")
    assert shape(r) == ([("example.org", 8000)], "example.org:8000", "example.org", "example.org")
    assert seen == [] and srv.queries == []


# --- Step 3: well-known ------------------------------------------------------------------------

async def test_well_known_delegation_to_host_with_port() -> None:
    d, seen, _ = make(well_known({"m.server": "matrix.example.org:443"}))
    r = await d.resolve("example.org")
    assert seen == ["https://example.org/.well-known/matrix/server"]
    # 3.2: Host is the delegated name with port; the certificate is the delegated hostname.
    assert shape(r) == (
        [("matrix.example.org", 443)], "matrix.example.org:443", "matrix.example.org", "matrix.example.org"
    )
    assert r.server_name == "example.org"
    assert [(s.step, s.outcome) for s in r.steps] == [("server_name", "used"), ("well_known", "used")]


async def test_well_known_delegation_to_ip() -> None:
    d, _, _ = make(well_known({"m.server": "10.0.0.5"}))
    r = await d.resolve("example.org")
    assert shape(r) == ([("10.0.0.5", 8448)], "10.0.0.5", "10.0.0.5", None)


async def test_well_known_delegation_then_srv_for_delegated_host() -> None:
    srv = FakeSrv({"_matrix-fed._tcp.matrix.example.org": [SrvRecord(10, 0, 8443, "fed.example.net")]})
    d, _, _ = make(well_known({"m.server": "matrix.example.org"}), srv)
    r = await d.resolve("example.org")
    # 3.3: connect to the SRV target, but Host and certificate are the delegated hostname.
    assert shape(r) == (
        [("fed.example.net", 8443)], "matrix.example.org", "matrix.example.org", "matrix.example.org"
    )
    assert srv.queries == ["_matrix-fed._tcp.matrix.example.org"]


async def test_well_known_delegation_deprecated_srv_then_default() -> None:
    srv = FakeSrv({"_matrix._tcp.matrix.example.org": [SrvRecord(0, 0, 9000, "old.example.net")]})
    d, _, _ = make(well_known({"m.server": "matrix.example.org"}), srv)
    r = await d.resolve("example.org")
    assert shape(r)[0] == [("old.example.net", 9000)]
    assert srv.queries == ["_matrix-fed._tcp.matrix.example.org", "_matrix._tcp.matrix.example.org"]

    d2, _, _ = make(well_known({"m.server": "matrix.example.org"}), FakeSrv())
    r2 = await d2.resolve("example.org")
    assert shape(r2) == ([("matrix.example.org", DEFAULT_PORT)], "matrix.example.org", "matrix.example.org", "matrix.example.org")
    assert r2.steps[-1].step == "default"


@pytest.mark.parametrize(
    "handler, why",
    [
        (well_known(b"{not json"), "not JSON"),
        (well_known([1, 2]), "not a JSON object"),
        (well_known({}), "no m.server"),
        (well_known({"m.server": 42}), "no m.server"),
        (well_known({"m.server": "bad host!"}), "not a valid server name"),
        (well_known({"m.server": "example.org:99999"}), "not a valid server name"),
        (well_known({"m.server": "x.org"}, status=500), "HTTP 500"),
        (not_found, "HTTP 404"),
        (well_known(b'{"m.server": "' + b"a" * WELL_KNOWN_MAX_BYTES + b'"}'), "larger than"),
    ],
)
async def test_invalid_well_known_falls_through_to_srv_and_8448(handler: Handler, why: str) -> None:
    srv = FakeSrv()
    d, _, _ = make(handler, srv)
    r = await d.resolve("example.org")
    assert shape(r) == ([("example.org", 8448)], "example.org", "example.org", "example.org")
    wk = next(s for s in r.steps if s.step == "well_known")
    assert wk.outcome == "not_found" and why in wk.detail
    assert srv.queries == ["_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"]


async def test_connection_error_falls_through() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    d, _, _ = make(boom)
    r = await d.resolve("example.org")
    assert r.targets == (Target("example.org", 8448),)
    assert "ConnectError" in r.steps[1].detail


async def test_redirects_are_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "example.org":
            return httpx.Response(301, headers={"location": "https://www.example.org/wk"})
        if request.url.path == "/wk":
            return httpx.Response(302, headers={"location": "/final"})
        return httpx.Response(200, json={"m.server": "hs.example.org:8448"})

    d, seen, _ = make(handler)
    r = await d.resolve("example.org")
    assert seen == [
        "https://example.org/.well-known/matrix/server",
        "https://www.example.org/wk",
        "https://www.example.org/final",
    ]
    assert r.host_header == "hs.example.org:8448"


async def test_redirect_loop_is_detected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        other = "/b" if request.url.path != "/b" else "/.well-known/matrix/server"
        return httpx.Response(302, headers={"location": other})

    d, seen, _ = make(handler)
    r = await d.resolve("example.org")
    assert len(seen) == 2
    assert "redirect loop" in r.steps[1].detail
    assert r.targets == (Target("example.org", 8448),)


async def test_endless_redirect_chain_is_cut() -> None:
    n = iter(range(1000))
    d, seen, _ = make(lambda req: httpx.Response(302, headers={"location": f"/r{next(n)}"}))
    r = await d.resolve("example.org")
    assert len(seen) == 11
    assert "redirects" in r.steps[1].detail


async def test_redirect_to_plain_http_is_refused() -> None:
    d, seen, _ = make(lambda req: httpx.Response(302, headers={"location": "http://example.org/x"}))
    r = await d.resolve("example.org")
    assert len(seen) == 1 and "non-https" in r.steps[1].detail


# --- Steps 4-6: SRV on the original hostname, then 8448 ------------------------------------------

async def test_srv_matrix_fed_on_hostname() -> None:
    srv = FakeSrv({
        "_matrix-fed._tcp.example.org": [SrvRecord(10, 0, 8449, "b.example.net"), SrvRecord(5, 0, 8448, "a.example.net")],
        "_matrix._tcp.example.org": [SrvRecord(0, 0, 1, "never.example.net")],
    })
    d, _, _ = make(not_found, srv)
    r = await d.resolve("example.org")
    # Priority order; Host and certificate stay the original hostname (not the SRV target).
    assert shape(r) == ([("a.example.net", 8448), ("b.example.net", 8449)], "example.org", "example.org", "example.org")
    assert srv.queries == ["_matrix-fed._tcp.example.org"]
    assert r.url("/x") == "https://a.example.net:8448/x"


async def test_srv_failure_and_dot_target_fall_through() -> None:
    srv = FakeSrv(
        {"_matrix._tcp.example.org": [SrvRecord(0, 0, 0, "")]},
        fail={"_matrix-fed._tcp.example.org"},
    )
    d, _, _ = make(not_found, srv)
    r = await d.resolve("example.org")
    assert r.targets == (Target("example.org", 8448),)
    assert [(s.step, s.outcome) for s in r.steps] == [
        ("server_name", "used"),
        ("well_known", "not_found"),
        ("srv:_matrix-fed._tcp", "error"),
        ("srv:_matrix._tcp", "not_found"),
        ("default", "used"),
    ]


def test_srv_weighted_order_within_priority() -> None:
    recs = [SrvRecord(1, 0, 1, "zero"), SrvRecord(1, 100, 2, "heavy"), SrvRecord(0, 1, 3, "first")]
    counts = {"heavy": 0, "zero": 0}
    for seed in range(200):
        ordered = order_srv_records(recs, random.Random(seed))
        assert ordered[0].target == "first"
        assert sorted(r.target for r in ordered) == ["first", "heavy", "zero"]
        counts[ordered[1].target] += 1
    # A weight-0 record is only picked first when the random point lands exactly on 0.
    assert counts["heavy"] >= 195


# --- Caching ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, None),
        ({"cache-control": "max-age=3600"}, 3600.0),
        ({"cache-control": "public, max-age=60, must-revalidate"}, 60.0),
        ({"cache-control": "no-store"}, 0.0),
        ({"cache-control": "private"}, None),
    ],
)
def test_cache_period_from_headers(headers: dict[str, str], expected: float | None) -> None:
    assert cache_period_from_headers(httpx.Headers(headers)) == expected


@pytest.mark.parametrize(
    "headers, cached_for",
    [
        ({}, 24 * 3600),  # the spec's default
        ({"cache-control": "max-age=7200"}, 7200),
        ({"cache-control": "max-age=9999999"}, 48 * 3600),  # the spec's maximum
        ({"cache-control": "max-age=0"}, 300),  # our floor
    ],
)
async def test_well_known_cached_within_bounds(headers: dict[str, str], cached_for: int) -> None:
    d, seen, clock = make(well_known({"m.server": "hs.example.org:443"}, headers=headers))
    await d.resolve("example.org")
    clock.now += cached_for - 1
    r = await d.resolve("example.org")
    assert len(seen) == 1 and "(cached)" in r.steps[1].detail
    clock.now += 2
    await d.resolve("example.org")
    assert len(seen) == 2


async def test_errors_cached_with_exponential_backoff() -> None:
    d, seen, clock = make(not_found)
    periods = []
    for _ in range(7):
        wk = await d.well_known("example.org")
        periods.append(wk.expires_at - clock.now)
        clock.now = wk.expires_at + 1
    assert periods == [120, 240, 480, 960, 1920, 3600, 3600]
    assert len(seen) == 7


async def test_success_resets_error_backoff() -> None:
    state = {"ok": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if state["ok"]:
            return httpx.Response(200, json={"m.server": "hs.example.org:1"})
        return httpx.Response(500)

    d, _, clock = make(handler)
    for _ in range(3):
        wk = await d.well_known("example.org")
        clock.now = wk.expires_at + 1
    state["ok"] = True
    wk = await d.well_known("example.org")
    assert wk.server == "hs.example.org:1"
    state["ok"] = False
    clock.now = wk.expires_at + 1
    wk = await d.well_known("example.org")
    assert wk.expires_at - clock.now == 120


# --- Names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", "exa mple.org", "example.org:0", "example.org:70000", "[::1", "a..b"])
async def test_invalid_server_names(bad: str) -> None:
    d, _, _ = make(not_found)
    with pytest.raises(DiscoveryError):
        await d.resolve(bad)


def test_split_server_name() -> None:
    assert split_server_name("example.org") == ("example.org", None)
    assert split_server_name("example.org:80") == ("example.org", 80)
    assert split_server_name("[::1]:80") == ("::1", 80)
    assert split_server_name("[::1]") == ("::1", None)
