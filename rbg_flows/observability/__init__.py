"""Metrics, health endpoints and log context shared by the worker and the watcher.

Sits below `kube/` and `activities/` (both record into it) and imports none of them, so the watcher can
use it without loading the worker's Kubernetes client: `metrics` (every metric this project defines, in
one registry), `operations` (Event reason → operation metrics), `sdk` (the Temporal SDK's metrics drained
into the same registry), `activity` (log context and retry metrics for every activity), `http` (the
`/metrics` and `/healthz` server).
"""

# The addresses the deploy/ manifests probe and scrape (the watcher's kopf liveness also defaults to :8080).
DEFAULT_HEALTH_ADDRESS = "0.0.0.0:8080"
DEFAULT_METRICS_ADDRESS = "0.0.0.0:9090"
