"""metrics.py on its own: what one ServerMetrics exposes, and the Grafana dashboard in packaging/
reading only that."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dendrite_lite.metrics import ROUTE_SCOPE_KEY, ServerMetrics

DASHBOARD = Path(__file__).parents[2] / "packaging" / "grafana-dashboard.json"

# The series names each kind of metric family writes (prometheus-client's text format).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
_PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
    "unless",
})


def exposed_series() -> set[str]:
    """Every series name a server's /metrics can show, labelled children or not."""
    names = set()
    for family in ServerMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once label matchers, ranges,
    grouping clauses, strings, function calls and keywords are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?!\s*\()(?![A-Za-z0-9_:])", expr)
    return {w for w in words if w not in _PROMQL_WORDS}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_every_dashboard_query_reads_only_metrics_we_expose() -> None:
    exposed = exposed_series()
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    read: set[str] = set()
    for panel in panels:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: {target['expr']} reads no metric"
            assert names <= exposed, f"{panel['title']}: not exposed: {names - exposed}"
            read |= names
    # Every family the issue asks for has a panel.
    for wanted in (
        "dendrite_lite_http_requests_total", "dendrite_lite_http_request_duration_seconds_bucket",
        "dendrite_lite_events_persisted_total", "dendrite_lite_db_commit_transactions_sum",
        "dendrite_lite_db_commit_duration_seconds_bucket", "dendrite_lite_sync_waiters",
        "dendrite_lite_federation_queue_length",
        "dendrite_lite_federation_transaction_failures_total",
        "dendrite_lite_federation_remote_join_duration_seconds_bucket",
        "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
    ):
        assert wanted in read, wanted


def test_the_query_reader_finds_what_is_not_exposed() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{route!~"a|b"}[$__rate_interval])))'
    ) == {"x_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / sum(rate(b_count[5m]))") == {"a_total", "b_count"}
    assert "made_up_total" not in exposed_series()


def test_the_dashboard_asks_for_its_prometheus_data_source() -> None:
    board = dashboard()
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])


def samples(metrics: ServerMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in family.samples
    }


def test_each_server_counts_in_its_own_registry() -> None:
    one, two = ServerMetrics(), ServerMetrics()
    scope = {"method": "GET", ROUTE_SCOPE_KEY: "/_matrix/client/versions"}
    for _ in range(3):
        one.observe_request(scope, 200, 0.001)
    two.observe_request(scope, 200, 0.001)
    key = (
        "dendrite_lite_http_requests_total",
        frozenset({"route": "/_matrix/client/versions", "method": "GET", "status": "200"}.items()),
    )
    assert samples(one)[key] == 3
    assert samples(two)[key] == 1


def test_odd_methods_and_unmatched_paths_are_one_label_value_each() -> None:
    metrics = ServerMetrics()
    for method in ("BREW", "WHEN", "GET"):
        metrics.observe_request({"method": method}, 404, 0.001)
    got = {
        (dict(labels)["route"], dict(labels)["method"]): v
        for (name, labels), v in samples(metrics).items()
        if name == "dendrite_lite_http_requests_total"
    }
    assert got == {("unmatched", "other"): 2, ("unmatched", "GET"): 1}
    # Nor does the server keep anything per method a client makes up.
    for i in range(100):
        metrics.observe_request({"method": f"M{i}"}, 404, 0.001)
    assert len(metrics._children) == 2


def _prometheus_loaded_after(imports: str) -> bool:
    probe = f"import sys\n{imports}\nprint('prometheus_client' in sys.modules)\n"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60,
        check=True,
    )
    return out.stdout.strip() == "True"


def test_a_server_without_metrics_never_loads_prometheus_client() -> None:
    # The server and its wiring import the metrics only when metrics.enabled (idle RSS with
    # them on: +0.6 MiB, bench/chat.py).
    assert not _prometheus_loaded_after("import dendrite_lite.server, dendrite_lite.service_wiring")
    assert _prometheus_loaded_after("import dendrite_lite.api.metrics")
