"""Prometheus /metrics ([metrics]): a known workload through a real server, then the scrape
parsed with prometheus-client's own parser and its numbers checked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, StartServer
from tests.integration.federation_helpers import (
    RemoteServer,
    join_remote_user,
    pdu,
    services_of,
)
from tests.integration.room_helpers import User, new_user
from tests.interop.synapse_server import tls_overrides

SEND_ROUTE = "/_matrix/client/v3/rooms/<room_id>/send/<event_type>/<txn_id>"
SYNC_ROUTE = "/_matrix/client/v3/sync"
MESSAGES = 7
# Anyone may register, and nobody waits for the rate limits.
NO_LIMITS = {"registration.mode": "open", "ratelimit.enabled": False}


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(resp.text)


async def scrape_when(
    client: httpx.AsyncClient, name: str, more_than: float = 0, **labels: str
) -> Samples:
    """The first scrape (within 5 s) in which `name` with `labels` is more than `more_than`."""
    for _ in range(250):
        samples = await scrape(client)
        if value(samples, name, **labels) > more_than:
            return samples
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} {labels} stayed 0")


def joins(samples: Samples, outcome: str, stat: str = "count") -> float:
    return value(
        samples, f"dendrite_lite_federation_remote_join_duration_seconds_{stat}", outcome=outcome
    )


async def workload(srv: RunningServer, messages: int = MESSAGES) -> tuple[User, int]:
    """Two users, a room both are in, `messages` messages, one /sync. Returns the first user
    and the number of events the workload stored."""
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room = await alice.create_room(preset="public_chat")
    created = len((await alice.call("GET", f"/rooms/{room}/state")).json())
    await bob.call("POST", f"/rooms/{room}/join", {})
    for i in range(messages):
        await alice.send(room, f"message {i}")
    await bob.call("GET", "/sync")
    return alice, created + 1 + messages


async def test_a_known_workload_is_counted_exactly(start_server: StartServer) -> None:
    srv = await start_server({**NO_LIMITS, "metrics.enabled": True})
    _, stored = await workload(srv)
    samples = await scrape(srv.client)

    sent = value(
        samples, "dendrite_lite_http_requests_total", route=SEND_ROUTE, method="PUT", status="200"
    )
    assert sent == MESSAGES
    assert value(
        samples, "dendrite_lite_http_request_duration_seconds_count", route=SEND_ROUTE, method="PUT"
    ) == MESSAGES
    assert value(
        samples, "dendrite_lite_http_requests_total", route=SYNC_ROUTE, method="GET", status="200"
    ) == 1
    # The first of each registration's two requests is the 401 asking for auth.
    register = "/_matrix/client/v3/register"
    assert value(
        samples, "dendrite_lite_http_requests_total", route=register, method="POST", status="401"
    ) == 2
    # Only the room's events: registrations store none.
    assert value(samples, "dendrite_lite_events_persisted_total", origin="local") == stored
    assert value(samples, "dendrite_lite_events_persisted_total", origin="remote") == 0
    # Every write was committed, one or more per commit.
    commits = value(samples, "dendrite_lite_db_commit_transactions_count")
    assert commits >= MESSAGES
    assert value(samples, "dendrite_lite_db_commit_transactions_sum") >= commits
    assert value(samples, "dendrite_lite_db_commit_duration_seconds_count") == commits
    assert value(samples, "dendrite_lite_sync_waiters") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0
    # No other server was involved.
    assert total(samples, "dendrite_lite_federation_transactions_sent_total") == 0
    assert total(samples, "dendrite_lite_federation_remote_join_duration_seconds_count") == 0


async def test_requests_are_labelled_by_route_never_by_path(start_server: StartServer) -> None:
    srv = await start_server({"metrics.enabled": True})
    for i in range(3):
        assert (await srv.client.get(f"/no/such/path/{i}")).status_code == 404
    samples = await scrape(srv.client)
    routes = {dict(ls)["route"] for n, ls in samples if n == "dendrite_lite_http_requests_total"}
    assert not any(r.startswith("/no/") for r in routes)
    assert value(
        samples, "dendrite_lite_http_requests_total", route="unmatched", method="GET", status="404"
    ) == 3


async def test_a_waiting_sync_is_a_sync_waiter(start_server: StartServer) -> None:
    srv = await start_server({**NO_LIMITS, "metrics.enabled": True})
    alice = await new_user(srv, "alice")
    since = (await alice.call("GET", "/sync")).json()["next_batch"]
    waiting = asyncio.create_task(alice.call("GET", "/sync", params={"since": since, "timeout": 5000}))
    try:
        samples = await scrape_when(srv.client, "dendrite_lite_sync_waiters")
        assert value(samples, "dendrite_lite_sync_waiters") == 1
        await alice.create_room()  # news: the /sync answers
        await waiting
    finally:
        waiting.cancel()
    assert value(await scrape(srv.client), "dendrite_lite_sync_waiters") == 0


async def test_metrics_are_off_by_default(start_server: StartServer) -> None:
    srv = await start_server()
    assert srv.config.metrics.enabled is False
    assert (await srv.client.get("/metrics")).status_code == 404
    assert (await srv.federation.get("/metrics")).status_code == 404
    assert srv.listening.metrics is None


async def test_never_served_on_the_federation_listener(start_server: StartServer) -> None:
    srv = await start_server({"metrics.enabled": True})
    assert (await srv.client.get("/metrics")).status_code == 200
    assert (await srv.federation.get("/metrics")).status_code == 404


async def test_served_on_its_own_address_when_configured(start_server: StartServer) -> None:
    srv = await start_server({**NO_LIMITS, "metrics.enabled": True, "metrics.address": "127.0.0.1:0"})
    assert srv.listening.metrics is not None
    host, port = srv.listening.metrics
    # Its own listener only: neither the client nor the federation listener has it.
    assert (await srv.client.get("/metrics")).status_code == 404
    assert (await srv.federation.get("/metrics")).status_code == 404
    await new_user(srv, "carol")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as own:
        samples = await scrape(own)
        assert (await own.get("/_matrix/client/versions")).status_code == 404
    # The client listener's requests are counted there.
    assert value(
        samples, "dendrite_lite_http_requests_total",
        route="/_matrix/client/v3/register", method="POST", status="200",
    ) == 1


async def test_two_servers_in_one_process_count_apart(start_server: StartServer) -> None:
    one = await start_server({**NO_LIMITS, "metrics.enabled": True})
    two = await start_server({**NO_LIMITS, "metrics.enabled": True})
    await workload(one, messages=3)
    await workload(two, messages=5)
    for srv, sent in ((one, 3), (two, 5)):
        samples = await scrape(srv.client)
        assert value(
            samples, "dendrite_lite_http_requests_total", route=SEND_ROUTE, method="PUT", status="200"
        ) == sent


async def test_federation_is_counted_per_destination(start_server: StartServer) -> None:
    """A remote server (its name a closed port) in our room: its event is stored as remote,
    ours to it fails and waits in its queue, and a join through it fails and is timed."""
    srv = await start_server({**NO_LIMITS, "metrics.enabled": True})
    remote = await RemoteServer.trusted_by(srv)
    alice = await new_user(srv, "alice")
    room = await alice.create_room(preset="public_chat")
    await join_remote_user(srv, room, remote.user("bob"))
    theirs = await remote.build(srv, room, remote.user("bob"), "m.room.message", {"body": "hi"})
    assert (await remote.send(srv, [pdu(theirs)])).status_code == 200
    await alice.send(room, "to a server that is down")

    failures = "dendrite_lite_federation_transaction_failures_total"
    samples = await scrape_when(srv.client, failures, destination=remote.name, kind="retry")
    # Once: then it backs off (5 s at first), so no second attempt yet.
    assert value(samples, failures, destination=remote.name, kind="retry") == 1
    assert value(samples, "dendrite_lite_federation_queue_length", destination=remote.name) >= 1
    assert total(samples, "dendrite_lite_federation_transactions_sent_total") == 0
    assert value(samples, "dendrite_lite_events_persisted_total", origin="remote") == 1

    resp = await alice.call(
        "POST", f"/join/!nowhere:{remote.name}", {}, expect=None,
        params={"server_name": remote.name},
    )
    assert resp.status_code >= 400
    samples = await scrape(srv.client)
    assert (joins(samples, "failed"), joins(samples, "ok")) == (1, 0)


async def test_a_join_over_federation_between_two_real_servers(
    start_server: StartServer, tmp_path: Path
) -> None:
    """b's user joins a's room (TLS on loopback): b times the join and stores a's events as
    remote; a's next event goes to b in a transaction a counts as sent."""
    a, b = [await tls_metrics_server(start_server, tmp_path / tag) for tag in "ab"]
    try:
        alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
        room = await alice.create_room(preset="public_chat")
        await bob.call(
            "POST", f"/join/{quote(room)}", {}, params={"server_name": a.config.server.server_name}
        )
        joined = await scrape(b.client)
        assert (joins(joined, "ok"), joins(joined, "failed")) == (1, 0)
        assert joins(joined, "ok", "sum") > 0
        remote_before = value(joined, "dendrite_lite_events_persisted_total", origin="remote")
        assert remote_before >= 1  # our join, as the resident server signed it back

        await alice.send(room, "over federation")
        after = await scrape_when(
            b.client, "dendrite_lite_events_persisted_total", remote_before, origin="remote"
        )
        assert total(after, "dendrite_lite_federation_transaction_failures_total") == 0
        sent = "dendrite_lite_federation_transactions_sent_total"
        await scrape_when(a.client, sent, destination=b.config.server.server_name)
    finally:
        for srv in (a, b):  # neither TLS shutdown then waits for the other's idle connection
            client = services_of(srv).federation_client
            assert client is not None
            await client.aclose()


async def tls_metrics_server(start_server: StartServer, tls_dir: Path) -> RunningServer:
    """A server with metrics whose listeners serve a self-signed certificate (federation
    between two of them needs TLS); its test client does not verify it."""
    tls = tls_overrides(tls_dir)
    if tls is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    srv = await start_server({**tls, **NO_LIMITS, "metrics.enabled": True})
    await srv.client.aclose()
    srv.client = httpx.AsyncClient(base_url=srv.listening.client_url, timeout=20, verify=False)
    return srv
