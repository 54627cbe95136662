"""deploy/monitoring: the PrometheusRule's expressions and the Grafana dashboard's queries parse (with
promql-parser, the Python binding of GreptimeDB's PromQL parser) and name only metrics the processes
serve; the dashboard has the shape Grafana imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from rbg_flows.observability.metrics import known_metric_names

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (it must parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return [r for group in doc["spec"]["groups"] for r in group["rules"]]


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return doc


def test_the_walker_finds_every_selector() -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) > 1 or absent(b) or (c{x="y"} == 0)'
    assert metric_names(expr) == {"a_bucket", "b", "c"}
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(a[5m])")


def test_alerts_parse_and_use_known_metrics() -> None:
    known = known_metric_names()
    alerts = {r["alert"]: r for r in rules()}
    # The alerts the issue names: an operation failing, a progress deadline, the worker absent or idle.
    assert {
        "RbgOperationFailing",
        "RbgProgressDeadlineExceeded",
        "RbgWorkerAbsent",
        "RbgWorkerNotPolling",
    } <= set(alerts)
    for name, rule in alerts.items():
        used = metric_names(rule["expr"])
        assert used, name
        assert used <= known, f"{name} uses unknown metrics {sorted(used - known)}"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_dashboard_shape_and_queries() -> None:
    d = dashboard()
    known = known_metric_names()
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int)
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource"]
    panels = d["panels"]
    assert panels
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    covered: set[str] = set()
    for p in panels:
        assert p["type"] in ("timeseries", "stat", "gauge", "bargauge", "table", "heatmap"), p["title"]
        assert p["title"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"} and 0 < p["gridPos"]["w"] <= 24
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["datasource"]["uid"] == "${datasource}"
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), p["title"]
        for t in p["targets"]:
            used = metric_names(t["expr"])
            assert used and used <= known, f"{p['title']}: unknown {sorted(used - known)}"
            covered |= used
    # Every metric family of ours shows somewhere.
    ours = {n.removesuffix("_bucket") for n in covered if n.startswith("rbg_flows_")}
    assert ours >= {
        "rbg_flows_operations_started_total",
        "rbg_flows_operations_finished_total",
        "rbg_flows_operation_duration_seconds",
        "rbg_flows_progress_deadline_exceeded_total",
        "rbg_flows_activity_retries_total",
        "rbg_flows_activity_failures_total",
        "rbg_flows_kube_requests_total",
        "rbg_flows_kube_request_duration_seconds",
        "rbg_flows_watcher_signal_latency_seconds",
        "rbg_flows_worker_running",
        "rbg_flows_watcher_running",
    }


def test_the_readme_lists_every_metric_family() -> None:
    readme = (MONITORING.parents[1] / "README.md").read_text()
    families = {n.removesuffix("_bucket") for n in known_metric_names() if n.startswith("rbg_flows_")}
    families = {n for n in families if not n.endswith(("_sum", "_count"))}
    missing = sorted(f for f in families if f.removesuffix("_total") not in readme)
    assert not missing, missing
