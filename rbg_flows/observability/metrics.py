"""Every metric rbg_flows defines, in one registry that `/metrics` serves (the Temporal SDK's metrics are
added to it by `sdk.TemporalMetrics`)."""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

PREFIX = "rbg_flows"

# No `_created` series beside every counter and histogram: Prometheus ignores them in the text format,
# and they would double the series count. (The function has no annotations in prometheus_client.)
disable_created_metrics()  # type: ignore[no-untyped-call]

# Own registry rather than the library's global one: tests and the alert checks see exactly what the
# processes serve, and nothing a third-party import registers by side effect.
REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# Operations run from seconds (a scale) to an hour (a large upgrade waiting on readiness).
OPERATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
# API calls and signals: milliseconds normally, tens of seconds when retried through an outage.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

OPERATIONS_STARTED = Counter(
    f"{PREFIX}_operations_started",
    "Operations started (their Started Event was posted), by kind.",
    ["kind"],
    registry=REGISTRY,
)
OPERATIONS_FINISHED = Counter(
    f"{PREFIX}_operations_finished",
    "Operations finished, by kind and outcome (succeeded or failed).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
OPERATION_DURATION = Histogram(
    f"{PREFIX}_operation_duration_seconds",
    "From the operation workflow's start to its Succeeded or Failed Event, by kind and outcome.",
    ["kind", "outcome"],
    buckets=OPERATION_BUCKETS,
    registry=REGISTRY,
)
PROGRESS_DEADLINE_EXCEEDED = Counter(
    f"{PREFIX}_progress_deadline_exceeded",
    "Roles not ready within the ready deadline (Progressing=False, ProgressDeadlineExceeded), by kind.",
    ["kind"],
    registry=REGISTRY,
)
ACTIVITY_RETRIES = Counter(
    f"{PREFIX}_activity_retries",
    "Activity attempts after the first, by activity and the error type of the previous attempt's failure "
    "('unknown' when that attempt ran in another worker process).",
    ["activity", "error_type"],
    registry=REGISTRY,
)
ACTIVITY_FAILURES = Counter(
    f"{PREFIX}_activity_failures",
    "Failed activity attempts, by activity, error type and whether Temporal retries it.",
    ["activity", "error_type", "retryable"],
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    f"{PREFIX}_kube_requests",
    "Kubernetes API requests by verb (get, list, watch, create, update, patch, apply, delete) and HTTP "
    "status code ('error' when no response came back).",
    ["verb", "code"],
    registry=REGISTRY,
)
KUBE_REQUEST_DURATION = Histogram(
    f"{PREFIX}_kube_request_duration_seconds",
    "Kubernetes API request latency by verb (a watch: until its headers arrive).",
    ["verb"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
SIGNAL_LATENCY = Histogram(
    f"{PREFIX}_watcher_signal_latency_seconds",
    "From the watcher's receipt of a Kubernetes watch event to Temporal accepting its signal (retries "
    "included), by signal (spec, deleted, drift, profile, adapter, pod_failed, set, set_child, set_deleted).",
    ["signal"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
WORKER_RUNNING = Gauge(
    f"{PREFIX}_worker_running",
    "1 while the worker is connected to Temporal and polling its task queue.",
    ["task_queue"],
    registry=REGISTRY,
)
WATCHER_RUNNING = Gauge(
    f"{PREFIX}_watcher_running",
    "1 while the watcher is connected to Temporal, leading or standing by.",
    registry=REGISTRY,
)
WATCHER_LEADER = Gauge(
    f"{PREFIX}_watcher_leader",
    "1 while this watcher holds the Lease and runs its handlers, 0 while it stands by (1 while running "
    "with leader election off). The sum over the watchers is 1 when one leads.",
    registry=REGISTRY,
)

WEBHOOK_CONVERSIONS = Counter(
    f"{PREFIX}_webhook_conversions",
    "Objects the conversion webhook was asked to convert, by kind, the version converted from and to, and "
    "result (success or failure: the object could not be converted, and the whole review failed).",
    ["kind", "from_version", "to_version", "result"],
    registry=REGISTRY,
)
WEBHOOK_REVIEW_DURATION = Histogram(
    f"{PREFIX}_webhook_review_duration_seconds",
    "From a ConversionReview's arrival to its answer, by result (success, failure, or refused: not a "
    "ConversionReview, or larger than --max-request-bytes).",
    ["result"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_CERTIFICATE_RELOADS = Counter(
    f"{PREFIX}_webhook_certificate_reloads",
    "Serving certificate files the webhook found changed, by result (loaded, or failed: the old pair is "
    "kept, e.g. a key that does not match its certificate yet).",
    ["result"],
    registry=REGISTRY,
)
WEBHOOK_CERTIFICATE_EXPIRY = Gauge(
    f"{PREFIX}_webhook_certificate_expiry_timestamp_seconds",
    "notAfter of the serving certificate the webhook presents (Unix time).",
    registry=REGISTRY,
)

# Temporal SDK (core) metrics the alerts and the dashboard rely on, with their kinds; they appear once the
# SDK emits them (`sdk.TemporalMetrics`).
TEMPORAL_SDK_METRICS = {
    "temporal_request": "counter",
    "temporal_request_failure": "counter",
    "temporal_request_latency": "histogram",
    "temporal_long_request": "counter",
    "temporal_num_pollers": "gauge",
    "temporal_worker_task_slots_available": "gauge",
    "temporal_workflow_task_execution_latency": "histogram",
    "temporal_workflow_task_schedule_to_start_latency": "histogram",
    "temporal_activity_execution_latency": "histogram",
    "temporal_activity_schedule_to_start_latency": "histogram",
    "temporal_activity_execution_failed": "counter",
    "temporal_workflow_completed": "counter",
    "temporal_workflow_failed": "counter",
}


def sample_names(name: str, kind: str) -> set[str]:
    """The names a metric's samples carry in the exposition format."""
    if kind == "counter":
        return {name + "_total"}
    if kind == "histogram":
        return {name + s for s in ("_bucket", "_sum", "_count")}
    return {name}


def known_metric_names() -> set[str]:
    """Every sample name `/metrics` may serve: this registry's metrics (labelled ones included before
    their first sample) and the Temporal SDK metrics listed above."""
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names |= {sample.name for sample in metric.samples}
        names |= sample_names(metric.name, metric.type)
    for name, kind in TEMPORAL_SDK_METRICS.items():
        names |= sample_names(name, kind)
    return names
