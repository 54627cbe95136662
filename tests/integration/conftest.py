"""Integration fixtures: one sim (real control plane + node simulator) per session, a namespace per test.

With RBG_TEST_KUBECONFIG set, the tests run against that cluster instead; the node simulator then
registers its fake GPU nodes there, and tests that need the fault proxy are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.sim.build import ensure_binaries
from rbg_flows.sim.launch import launch_sim
from rbg_flows.sim.nodesim import NodeSimulator, NodeSimulatorConfig
from rbg_flows.sim.procs import ManagedProcess
from rbg_flows.sim.topology import parse_topology
from rbg_flows.sim.webhook import published_client_config
from rbg_flows.temporal import start_dev_server

SIM_READY_DELAY = 0.5
START_TIMEOUT = 180.0


@dataclass
class SimCluster:
    kubeconfig: Path
    kubectl: Path
    external: bool
    info: dict[str, Any]
    state_dir: Path | None
    process: ManagedProcess | None

    @property
    def fault_proxy_control(self) -> str | None:
        return self.info.get("faultProxyControl")

    @property
    def conversion_client_config(self) -> dict[str, str] | None:
        """Where the CRDs' conversion webhook is reached: the sim's local process (None on an external
        cluster, whose CRDs call the in-cluster Service of deploy/)."""
        return published_client_config(self.info)

    def webhook(self, action: str) -> dict[str, Any]:
        """`stop` or `start` the sim's conversion webhook process (its control endpoint); its state."""
        control = self.info.get("simControl")
        if not control:
            pytest.skip("needs the sim's conversion webhook process (an external cluster runs deploy/'s)")
        request = urllib.request.Request(f"{control}/webhook/{action}", method="POST")
        with urllib.request.urlopen(request, timeout=60) as resp:
            state: dict[str, Any] = json.loads(resp.read())
        return state

    @property
    def direct_kubeconfig(self) -> Path:
        """Admin kubeconfig that bypasses the fault proxy (the sim only)."""
        if self.state_dir is None:
            return self.kubeconfig
        return self.state_dir / "kubeconfigs" / "admin.yaml"

    def kubectl_run(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
            timeout=120,
        )


def start_sim(base: Path, *extra: str) -> tuple[ManagedProcess, Path]:
    return launch_sim(base, *extra, timeout=START_TIMEOUT)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    bins = ensure_binaries()  # builds once, cached afterwards
    external = os.environ.get("RBG_TEST_KUBECONFIG")
    base = tmp_path_factory.mktemp("sim")
    if external:
        nodes = ManagedProcess(
            "node-simulator",
            [sys.executable, "-m", "rbg_flows.cli", "sim", "nodes", f"--ready-delay={SIM_READY_DELAY}"],
            base / "nodes.log",
            env={**os.environ, "KUBECONFIG": external},
        )
        nodes.start()
        yield SimCluster(Path(external), bins.path("kubectl"), True, {}, None, nodes)
        nodes.stop()
        return
    proc, kubeconfig = start_sim(
        base, "--fault-proxy", f"--ready-delay={SIM_READY_DELAY}", "--toleration-seconds=5"
    )
    info = json.loads((base / "state" / "sim.json").read_text())
    yield SimCluster(kubeconfig, bins.path("kubectl"), False, info, base / "state", proc)
    proc.stop(timeout=30)


@pytest.fixture(scope="session")
async def kube(sim: SimCluster) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_kubeconfig(sim.direct_kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def namespace(kube: KubeClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    short = request.node.name.split("[")[0].replace("_", "-")[:40].strip("-").lower()
    async with scratch_namespace(kube, f"t-{short}-{uuid.uuid4().hex[:5]}") as name:
        yield name


@pytest.fixture
def fault_proxy(sim: SimCluster) -> str:
    if not sim.fault_proxy_control:
        pytest.skip("needs the sim's API fault proxy (not available on an external cluster)")
    return sim.fault_proxy_control


# -- LeaderWorkerSet: tests marked `lws` need the API and a controller acting on it -----------------------
LWS_PROBE = """
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {{name: probe, namespace: {ns}}}
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 1
    workerTemplate:
      spec:
        containers: [{{name: c, image: probe:1}}]
"""


def leaderworkerset_missing(sim: SimCluster, timeout: float = 30.0) -> str | None:
    """Why this cluster cannot run LeaderWorkerSet roles, or None when it can. A served API is not
    enough (a cluster may have the CRD and no controller), so a probe object must get its leader
    StatefulSet from a controller."""
    if sim.kubectl_run("get", "--raw", "/apis/leaderworkerset.x-k8s.io/v1", check=False).returncode:
        return "the cluster does not serve leaderworkerset.x-k8s.io/v1"
    ns = f"lws-probe-{uuid.uuid4().hex[:6]}"
    sim.kubectl_run("create", "namespace", ns)
    try:
        made = sim.kubectl_run("apply", "-f", "-", input=LWS_PROBE.format(ns=ns), check=False)
        if made.returncode:
            return f"a LeaderWorkerSet cannot be created: {made.stderr.strip()}"
        waited = sim.kubectl_run(
            "-n", ns, "wait", "--for=create", "statefulset/probe", f"--timeout={int(timeout)}s", check=False
        )
        if waited.returncode:
            return f"no LeaderWorkerSet controller acted on a probe object within {int(timeout)}s"
        return None
    finally:
        sim.kubectl_run("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="session")
def lws_missing(sim: SimCluster) -> str | None:
    return leaderworkerset_missing(sim)


@pytest.fixture(autouse=True)
def _skip_without_leaderworkerset(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("lws") is None:
        return
    reason = request.getfixturevalue("lws_missing")
    if reason:
        pytest.skip(f"needs a LeaderWorkerSet controller: {reason}")


@pytest.fixture
async def iso_namespace(kube: KubeClient) -> AsyncIterator[str]:
    """A namespace the session's orchestrator does not watch (it watches t-*): for a test with an
    orchestrator of its own, or one whose group nothing else may touch (status writes would move it)."""
    async with scratch_namespace(kube, f"iso-{uuid.uuid4().hex[:8]}") as name:
        yield name


@contextlib.asynccontextmanager
async def scratch_namespace(kube: KubeClient, name: str) -> AsyncIterator[str]:
    """A namespace for one test, deleted (with everything in it) afterwards."""
    await kube.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    try:
        yield name
    finally:
        await kube.delete(f"/api/v1/namespaces/{name}")


# -- Temporal and the orchestrator ---------------------------------------------------------------
MAIN_NAMESPACES = "t-*"  # the shared orchestrator watches these; isolated tests use "iso-*" namespaces


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[Any]:
    # Suggest continue-as-new after 60 events (default: thousands), so every long-running test exercises
    # the entity workflow carrying its state into a new run.
    env = await start_dev_server(
        extra_args=[
            "--ui-disable-news-fetch",
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
        ]
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal_env: Any) -> str:
    return str(temporal_env.client.service_client.config.target_host)


@pytest.fixture(scope="session")
async def cluster_id(kube: KubeClient) -> str:
    """The session's cluster id, as the worker, the watcher and the CLI derive it (kube-system's UID)."""
    from rbg_flows.cli.processes import cluster_id_of

    return await cluster_id_of(kube)


@pytest.fixture(scope="session")
async def crds(sim: SimCluster, kube: KubeClient) -> list[str]:
    """The CRDs, their conversion webhook the sim's local process (an external cluster: deploy/'s
    in-cluster webhook, which must be installed there)."""
    from rbg_flows.kube.crds import install_crds

    return await install_crds(kube, conversion_client_config=sim.conversion_client_config)


@pytest.fixture(scope="session")
def orchestrator(
    sim: SimCluster, temporal_address: str, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from .orchestrator import Orchestrator

    orch = Orchestrator(
        temporal_address,
        sim.direct_kubeconfig,
        "rbg-test-main",
        tmp_path_factory.mktemp("orch"),
        [MAIN_NAMESPACES],
        worker_args=["--heartbeat-timeout=5"],
    ).start()
    yield orch
    orch.stop()


# Nodes of their own, tainted so no other test's pods land there, so faults cannot disturb other tests.
EXTRA_TOPOLOGY = """
nodes:
  - name: fault-node
    count: 2
    capacity: {cpu: "16", memory: 64Gi, nvidia.com/gpu: "4"}
    labels: {rbg.x-k8s.io/test-pool: faults}
    taints: [{key: rbg.x-k8s.io/test-pool, value: faults, effect: NoSchedule}]
"""
POOL: dict[str, Any] = {
    "nodeSelector": {"rbg.x-k8s.io/test-pool": "faults"},
    "tolerations": [{"key": "rbg.x-k8s.io/test-pool", "operator": "Exists"}],
}


@pytest.fixture(scope="module")
async def extra_nodes(kube: KubeClient) -> AsyncIterator[NodeSimulator]:
    """A second node simulator joining the running cluster, as it would join any real cluster."""
    sim = NodeSimulator(kube, parse_topology(EXTRA_TOPOLOGY), NodeSimulatorConfig(ready_delay=0.5))
    await sim.start()
    yield sim
    await sim.stop()
    for name in ("fault-node-0", "fault-node-1"):
        await kube.delete(f"/api/v1/nodes/{name}")
