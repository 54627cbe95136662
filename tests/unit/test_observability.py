"""The pure parts of rbg_flows.observability: metric names, Event reason → operation, workflow id →
group and kind, the Kubernetes verb of a request, the Temporal SDK bridge, and the HTTP endpoints."""

from __future__ import annotations

import datetime
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime, TelemetryConfig

from rbg_flows.messages import DEPLOY_WORKFLOW, ENTITY_WORKFLOW, UPGRADE_WORKFLOW, RbgKey
from rbg_flows.observability import operations
from rbg_flows.observability.activity import error_type, group_of
from rbg_flows.observability.http import serving, split_address
from rbg_flows.observability.kubeapi import kube_verb
from rbg_flows.observability.metrics import REGISTRY, TEMPORAL_SDK_METRICS, known_metric_names
from rbg_flows.observability.sdk import TemporalMetrics
from tests.http_get import http_get

OUR_METRICS = {
    "rbg_flows_operations_started_total",
    "rbg_flows_operations_finished_total",
    "rbg_flows_operation_duration_seconds_bucket",
    "rbg_flows_progress_deadline_exceeded_total",
    "rbg_flows_activity_retries_total",
    "rbg_flows_activity_failures_total",
    "rbg_flows_kube_requests_total",
    "rbg_flows_kube_request_duration_seconds_bucket",
    "rbg_flows_watcher_signal_latency_seconds_bucket",
    "rbg_flows_worker_running",
    "rbg_flows_watcher_running",
}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metric_names_follow_prometheus_conventions() -> None:
    names = known_metric_names()
    assert names >= OUR_METRICS
    ours = {n for n in names if n.startswith("rbg_flows_")}
    for n in ours:
        family = n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        # Durations in seconds; counters end in _total; one prefix.
        timed = "duration" in family or "latency" in family
        assert not timed or family.endswith("_seconds"), n
    assert {n for n in ours if n.endswith("_total")} >= {
        "rbg_flows_operations_started_total",
        "rbg_flows_kube_requests_total",
    }
    assert all(kind in ("counter", "gauge", "histogram") for kind in TEMPORAL_SDK_METRICS.values())


@pytest.mark.parametrize("kind", operations.KINDS)
@pytest.mark.parametrize("phase", operations.PHASES)
def test_every_operation_milestone_maps_to_its_kind(kind: str, phase: str) -> None:
    assert operations.operation_event(kind.capitalize() + phase) == (kind, phase)


@pytest.mark.parametrize(
    "reason",
    ["InvalidSpec", "RolloutPaused", "RollbackRequested", "AbortRequested", "Started", "XStarted", ""],
)
def test_other_events_are_no_operation_milestones(reason: str) -> None:
    assert operations.operation_event(reason) is None


def test_kind_and_group_from_workflow_ids() -> None:
    key = RbgKey(namespace="team-a", name="llama.v2")  # a name may hold dots; a namespace may not
    op = key.operation_id("scale", "4-2")
    assert operations.operation_kind(op) == "scale"
    assert operations.operation_kind(key.workflow_id) is None
    assert group_of(op, DEPLOY_WORKFLOW) == ("team-a", "llama.v2")
    assert group_of(key.operation_id("rollback", 3), UPGRADE_WORKFLOW) == ("team-a", "llama.v2")
    assert group_of(key.workflow_id, ENTITY_WORKFLOW) == ("team-a", "llama.v2")
    assert group_of("something-else", DEPLOY_WORKFLOW) is None


def test_record_counts_milestones_and_times_finished_operations() -> None:
    wid = RbgKey(namespace="ns", name="g").operation_id("upgrade", 7)
    started = value("rbg_flows_operations_started_total", kind="upgrade")
    failed = value("rbg_flows_operations_finished_total", kind="upgrade", outcome="failed")
    timed = value("rbg_flows_operation_duration_seconds_count", kind="upgrade", outcome="failed")
    total = value("rbg_flows_operation_duration_seconds_sum", kind="upgrade", outcome="failed")
    deadlines = value("rbg_flows_progress_deadline_exceeded_total", kind="upgrade")
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    operations.record("UpgradeStarted", wid, None)
    operations.record("ProgressDeadlineExceeded", wid, None)
    operations.record("UpgradeFailed", wid, t0, now=t0 + datetime.timedelta(seconds=90))
    operations.record("UpgradeFailed", wid, None)  # start unknown: counted, not timed
    operations.record("RolloutPaused", wid, None)

    assert value("rbg_flows_operations_started_total", kind="upgrade") == started + 1
    assert value("rbg_flows_progress_deadline_exceeded_total", kind="upgrade") == deadlines + 1
    assert value("rbg_flows_operations_finished_total", kind="upgrade", outcome="failed") == failed + 2
    assert value("rbg_flows_operation_duration_seconds_count", kind="upgrade", outcome="failed") == timed + 1
    assert value("rbg_flows_operation_duration_seconds_sum", kind="upgrade", outcome="failed") == total + 90


@pytest.mark.parametrize(
    ("method", "path", "params", "content_type", "verb"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", None, None, "list"),
        ("GET", "/api/v1/namespaces/ns/pods/p", None, None, "get"),
        ("GET", "/api/v1/namespaces/kube-system", None, None, "get"),
        ("GET", "/api/v1/nodes", None, None, "list"),
        ("GET", "/apis/apps/v1/namespaces/ns/statefulsets", {"watch": "true"}, None, "watch"),
        ("GET", "/apis/apps/v1/statefulsets", {"watch": "1"}, None, "watch"),
        ("GET", "/apis/workloads.x-k8s.io/v1alpha1/namespaces/ns/rolebasedgroups/g", None, None, "get"),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/statefulsets/s",
            None,
            "application/apply-patch+yaml",
            "apply",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/statefulsets/s",
            None,
            "application/merge-patch+json",
            "patch",
        ),
        ("POST", "/api/v1/namespaces/ns/events", None, "application/json", "create"),
        ("PUT", "/api/v1/namespaces/ns/configmaps/c", None, "application/json", "update"),
        ("DELETE", "/api/v1/namespaces/ns/pods/p", None, None, "delete"),
        ("DELETE", "/api/v1/namespaces/ns/pods", None, None, "deletecollection"),
    ],
)
def test_kube_verb(
    method: str, path: str, params: dict[str, str] | None, content_type: str | None, verb: str
) -> None:
    assert kube_verb(method, path, params, content_type) == verb


def test_error_type_is_what_temporal_reports() -> None:
    assert error_type(ApplicationError("conflict", type="Kube409")) == "Kube409"
    assert error_type(ApplicationError("no type")) == "ApplicationError"
    assert error_type(TimeoutError()) == "TimeoutError"


def test_the_sdk_bridge_exposes_counters_gauges_and_histograms() -> None:
    bridge = TemporalMetrics(1000)
    bridge.drain()  # before any runtime uses the buffer: nothing, and no error
    runtime = Runtime(telemetry=TelemetryConfig(metrics=bridge.buffer))
    meter = runtime.metric_meter
    counter = meter.create_counter("temporal_test_polls", "polls")
    counter.add(2, {"poller_type": "workflow_task"})
    counter.add(3, {"poller_type": "workflow_task"})
    counter.add(1, {"poller_type": "activity_task"})
    meter.create_gauge("temporal_test_slots").set(7, {"worker_type": "ActivityWorker"})
    hist = meter.create_histogram_float("temporal_test_latency", unit="s")
    for v in (0.003, 0.2, 0.2, 500.0):
        hist.record(v, {})

    # The runtime adds service_name="temporal-core-sdk" to every series: left out here.
    samples = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "service_name"))): s.value
        for family in bridge.collect()
        for s in family.samples
    }
    assert samples[("temporal_test_polls_total", (("poller_type", "workflow_task"),))] == 5
    assert samples[("temporal_test_polls_total", (("poller_type", "activity_task"),))] == 1
    assert samples[("temporal_test_slots", (("worker_type", "ActivityWorker"),))] == 7
    assert samples[("temporal_test_latency_count", ())] == 4
    assert samples[("temporal_test_latency_sum", ())] == pytest.approx(500.403)
    assert samples[("temporal_test_latency_bucket", (("le", "0.005"),))] == 1
    assert samples[("temporal_test_latency_bucket", (("le", "0.25"),))] == 3
    assert samples[("temporal_test_latency_bucket", (("le", "120.0"),))] == 3
    assert samples[("temporal_test_latency_bucket", (("le", "+Inf"),))] == 4
    del runtime


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_answers_503_until_ready_and_metrics_parse() -> None:
    import asyncio

    ready = False
    health, metrics = f"127.0.0.1:{_port()}", f"127.0.0.1:{_port()}"
    async with serving(metrics=metrics, health=health, ready=lambda: ready):
        assert await asyncio.to_thread(http_get, f"http://{health}/healthz") == (503, "not ready\n")
        ready = True
        assert (await asyncio.to_thread(http_get, f"http://{health}/healthz"))[0] == 200
        status, text = await asyncio.to_thread(http_get, f"http://{metrics}/metrics")
        assert status == 200
        assert {f.name for f in text_string_to_metric_families(text)} >= {"rbg_flows_operations_started"}
        assert (await asyncio.to_thread(http_get, f"http://{metrics}/healthz"))[0] == 404


async def test_one_address_serves_both_and_a_taken_port_fails_only_when_chosen() -> None:
    import asyncio

    address = f"127.0.0.1:{_port()}"
    async with serving(metrics=address, health=address):
        assert (await asyncio.to_thread(http_get, f"http://{address}/healthz"))[0] == 200
        assert (await asyncio.to_thread(http_get, f"http://{address}/metrics"))[0] == 200
        with pytest.raises(OSError):
            async with serving(metrics=address, required=[address]):
                pass
        async with serving(metrics=address):  # a default address: a warning, and the process runs on
            pass


def test_split_address() -> None:
    assert split_address("0.0.0.0:9090") == ("0.0.0.0", 9090)
    assert split_address(":8080") == ("0.0.0.0", 8080)
    assert split_address("[::1]:9090") == ("::1", 9090)
    with pytest.raises(ValueError):
        split_address("localhost")
