"""`/metrics` and `/healthz` of the real worker and watcher after a deploy: the operation counters and
duration, Kubernetes API requests by verb and code, the watcher's signal latency and the Temporal SDK's
own metrics, all with non-zero counts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rbg_flows.kube.client import KubeClient
from rbg_flows.sim.procs import free_port
from tests.http_get import http_get

from .conftest import SimCluster, scratch_namespace
from .orchestrator import Orchestrator
from .rbg_helpers import create_rbg, example, wait_ready

pytestmark = pytest.mark.sim

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    _, text = http_get(url)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def eventually(what: str, check: Callable[[], bool], logs: Callable[[], str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:.0f}s\n{logs()}")
        await asyncio.sleep(0.5)


@pytest.fixture
async def namespace_(kube: KubeClient) -> AsyncIterator[str]:
    async with scratch_namespace(kube, f"metrics-{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.fixture
def ports() -> dict[str, int]:
    picked: list[int] = []
    while len(picked) < 3:
        p = free_port()
        if p not in picked:
            picked.append(p)
    return dict(zip(("health", "worker_metrics", "watcher_metrics"), picked, strict=True))


@pytest.fixture
def orchestrator_(
    sim: SimCluster,
    temporal_address: str,
    crds: list[str],
    namespace_: str,
    ports: dict[str, int],
    tmp_path: Path,
) -> Iterator[Orchestrator]:
    orch = Orchestrator(
        temporal_address,
        sim.direct_kubeconfig,
        f"metrics-{namespace_}",
        tmp_path,
        [namespace_],
        worker_args=[
            "--heartbeat-timeout=5",
            "--log-format=json",
            f"--health-address=127.0.0.1:{ports['health']}",
            f"--metrics-address=127.0.0.1:{ports['worker_metrics']}",
        ],
        watcher_args=["--log-format=json", f"--metrics-address=127.0.0.1:{ports['watcher_metrics']}"],
    ).start()
    yield orch
    orch.stop()


async def test_metrics_and_health_after_a_deploy(
    kube: KubeClient, orchestrator_: Orchestrator, namespace_: str, ports: dict[str, int]
) -> None:
    ns, orch = namespace_, orchestrator_
    health = f"http://127.0.0.1:{ports['health']}/healthz"
    worker_url = f"http://127.0.0.1:{ports['worker_metrics']}/metrics"
    watcher_url = f"http://127.0.0.1:{ports['watcher_metrics']}/metrics"

    await eventually("worker /healthz 200", lambda: http_get(health)[0] == 200, orch.logs, 120)

    body = example("pd-disaggregation.yaml")
    name = body["metadata"]["name"]
    await create_rbg(kube, ns, body)
    await wait_ready(kube, ns, name, timeout=300)

    # The Succeeded Event is posted after the status that wait_ready saw; its count follows it.
    def deploy_counted() -> bool:
        s = scrape(worker_url)
        return total(s, "rbg_flows_operations_finished_total", kind="deploy", outcome="succeeded") >= 1

    await eventually("the deploy's finished counter", deploy_counted, orch.logs, 120)
    worker = scrape(worker_url)
    assert total(worker, "rbg_flows_operations_started_total", kind="deploy") >= 1
    assert total(worker, "rbg_flows_operation_duration_seconds_count", kind="deploy") >= 1
    assert total(worker, "rbg_flows_operation_duration_seconds_sum", kind="deploy") > 0
    assert total(worker, "rbg_flows_worker_running") == 1
    # Server-side applies of the workloads, reads of the group, the watch cache's list and watch.
    for verb in ("apply", "get", "list", "watch"):
        assert total(worker, "rbg_flows_kube_requests_total", verb=verb) > 0, verb
    assert (
        total(worker, "rbg_flows_kube_requests_total", verb="apply", code="200")
        + total(worker, "rbg_flows_kube_requests_total", verb="apply", code="201")
        > 0
    )
    assert total(worker, "rbg_flows_kube_request_duration_seconds_count", verb="apply") > 0
    sdk = {n for (n, _), v in worker.items() if n.startswith("temporal_") and v > 0}
    assert sdk, "no Temporal SDK metric with a non-zero value on the worker"
    # The ones the alerts and the dashboard use, where the worker has had occasion to emit them.
    assert {"temporal_request_total", "temporal_num_pollers"} <= sdk
    assert "temporal_workflow_task_execution_latency_count" in sdk
    assert "temporal_activity_execution_latency_count" in sdk
    # The series the alerts and the dashboard select, with the labels they select by.
    assert total(worker, "temporal_long_request_total", operation="PollWorkflowTaskQueue") > 0
    assert total(worker, "temporal_num_pollers", poller_type="workflow_task") > 0
    assert any(
        n == "temporal_worker_task_slots_available" and dict(ls).get("worker_type") for n, ls in worker
    )
    print("Temporal SDK metrics on the worker:", sorted(sdk))

    watcher = scrape(watcher_url)
    assert total(watcher, "rbg_flows_watcher_signal_latency_seconds_count", signal="spec") >= 1
    assert total(watcher, "rbg_flows_watcher_signal_latency_seconds_sum", signal="spec") > 0
    assert total(watcher, "rbg_flows_watcher_running") == 1
    assert total(watcher, "temporal_request_total") > 0, "no Temporal SDK client metric on the watcher"
    assert http_get(health)[0] == 200
