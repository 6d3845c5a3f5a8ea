"""The Prometheus metrics of one server ([metrics] in the config; served by api/metrics.py).

Every metric lives in this server's own `CollectorRegistry`, never prometheus-client's global
one: tests run several servers in one process, and each must count only its own work.

The wiring point (service_wiring.py) hands the recording methods to the places that record,
as plain callbacks (the writer's `on_commit`, the pipeline's commit hooks, AccessLog's
`on_response`, ...), so no service or storage module imports this one or prometheus-client, and
a server without metrics never loads either. Recording stays cheap on the hot paths (send,
sync): a dict lookup and prometheus-client's own increments; the label children of each
(route, method, status) are looked up once and kept.

What is computed when scraped, not recorded: /sync waiters (the notifier's count), the
federation queues (outbox rows plus in-memory EDUs per destination, read by `exposition`
before it renders), and the process (RSS, CPU seconds, open files, start time:
prometheus-client's ProcessCollector). Not counted: events stored by backfill (history fetched
for /messages), which are neither new local nor new remote events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "ROUTE_SCOPE_KEY", "ServerMetrics"]

# The text format every Prometheus version reads (what prometheus-client's own exporters send
# a scraper that asks for nothing newer); `generate_latest` writes it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Where the app leaves the matched URL rule in the ASGI scope for `observe_request`.
ROUTE_SCOPE_KEY = "dendrite_lite.route"
# A request that matched no route: one label value, whatever its path (cardinality).
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})

# Seconds. Long-polling /sync answers at its timeout (30 s in most clients), hence the top ones.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Write jobs per commit: the writer takes at most 256 (storage/database.py DEFAULT_MAX_GROUP).
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# A join over federation fetches and checks the room's whole state: seconds to many minutes.
_JOIN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

_Children = tuple[Any, Any]  # (request counter child, latency histogram child)


class ServerMetrics:
    """One server's metrics. Record through the methods; `exposition()` renders a scrape."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._requests = Counter(
            "dendrite_lite_http_requests", "HTTP requests answered, by matched route, method and status",
            ["route", "method", "status"], registry=registry,
        )
        self._latency = Histogram(
            "dendrite_lite_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by matched route and method",
            ["route", "method"], buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self._children: dict[tuple[str, str, int], _Children] = {}
        events = Counter(
            "dendrite_lite_events_persisted",
            "Room events stored in a room's timeline: local (built here by the room pipeline) or "
            "remote (received over federation, our joins to other servers' rooms included)",
            ["origin"], registry=registry,
        )
        self._local_events, self._remote_events = events.labels("local"), events.labels("remote")
        self._commit_jobs = Histogram(
            "dendrite_lite_db_commit_transactions",
            "Write transactions sharing one SQLite commit (group commit)",
            buckets=_GROUP_BUCKETS, registry=registry,
        )
        self._commit_seconds = Histogram(
            "dendrite_lite_db_commit_duration_seconds",
            "Time from BEGIN to a durable COMMIT of one group of write transactions",
            buckets=_COMMIT_BUCKETS, registry=registry,
        )
        self._fed_sent = Counter(
            "dendrite_lite_federation_transactions_sent",
            "Federation transactions a destination answered with 200", ["destination"],
            registry=registry,
        )
        self._fed_failures = Counter(
            "dendrite_lite_federation_transaction_failures",
            "Federation transactions that failed: retry (unreachable or a 5xx; retried after a "
            "backoff) or rejected (a 4xx; dropped)",
            ["destination", "kind"], registry=registry,
        )
        self._joins = Histogram(
            "dendrite_lite_federation_remote_join_duration_seconds",
            "Time our users' joins to rooms on other servers took, by outcome",
            ["outcome"], buckets=_JOIN_BUCKETS, registry=registry,
        )
        self._sync_waiters = Gauge(
            "dendrite_lite_sync_waiters", "Long-polling /sync requests waiting for news",
            registry=registry,
        )
        self._queues = _FederationQueues()
        registry.register(self._queues)
        ProcessCollector(registry=registry)
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    # --- recording (hot paths) -------------------------------------------------------------------
    def observe_request(self, scope: Mapping[str, Any], status: int, seconds: float) -> None:
        """AccessLog's `on_response`: one answered HTTP request."""
        method = scope["method"]
        if method not in _METHODS:  # any token a client sends, not one of our routes': one value
            method = "other"
        key = (scope.get(ROUTE_SCOPE_KEY) or UNMATCHED, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._new_children(*key)
        children[0].inc()
        children[1].observe(seconds)

    def _new_children(self, route: str, method: str, status: int) -> _Children:
        return (
            self._requests.labels(route, method, str(status)),
            self._latency.labels(route, method),
        )

    def local_events_committed(self, room_id: str, events: Sequence[object]) -> None:
        """A RoomPipeline commit hook: a batch of our users' events is durable."""
        self._local_events.inc(len(events))

    def remote_event_persisted(self, event: object) -> None:
        """FederationIngest's `on_persisted`: one event from another server is stored."""
        self._remote_events.inc()

    def commit_observed(self, jobs: int, seconds: float) -> None:
        """The database writer's `on_commit`: `jobs` write transactions shared one commit."""
        self._commit_jobs.observe(jobs)
        self._commit_seconds.observe(seconds)

    def federation_transaction(self, destination: str, outcome: str) -> None:
        """FederationSender's `on_transaction`: "sent", "retry" or "rejected"."""
        if outcome == "sent":
            self._fed_sent.labels(destination).inc()
        else:
            self._fed_failures.labels(destination, outcome).inc()

    def remote_join_finished(self, ok: bool, seconds: float) -> None:
        self._joins.labels("ok" if ok else "failed").observe(seconds)

    # --- computed when scraped ---------------------------------------------------------------
    def watch_sync_waiters(self, count: Callable[[], int]) -> None:
        self._sync_waiters.set_function(count)

    def watch_federation_queues(self, lengths: Callable[[], Awaitable[Mapping[str, int]]]) -> None:
        """`lengths()`: what waits per destination, read before each scrape."""

        async def refresh() -> None:
            self._queues.lengths = await lengths()

        self._refreshers.append(refresh)

    async def exposition(self) -> bytes:
        """The text format of one scrape (refreshing what is read from storage first)."""
        for refresh in self._refreshers:
            await refresh()
        return generate_latest(self.registry)


class _FederationQueues(Collector):
    """Per-destination queue lengths as of the last refresh (a destination whose queue is gone
    disappears, instead of staying at its last value as a labelled Gauge would)."""

    def __init__(self) -> None:
        self.lengths: Mapping[str, int] = {}

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "dendrite_lite_federation_queue_length",
            "PDUs and EDUs waiting to be sent to a destination",
            labels=["destination"],
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for destination, length in sorted(self.lengths.items()):
            family.add_metric([destination], length)
        return [family]
