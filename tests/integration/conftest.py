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
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.sim.build import ensure_binaries
from rbg_flows.sim.launch import launch_sim
from rbg_flows.sim.procs import ManagedProcess

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
    import shutil

    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from rbg_flows.workflows.entity import SEARCH_ATTRIBUTES

    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        # Suggest continue-as-new after 60 events (default: thousands), so every long-running test exercises
        # the entity workflow carrying its state into a new run.
        dev_server_extra_args=[
            "--ui-disable-news-fetch",
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal_env: Any) -> str:
    return str(temporal_env.client.service_client.config.target_host)


@pytest.fixture(scope="session")
async def crds(kube: KubeClient) -> list[str]:
    from rbg_flows.install import install_crds

    return await install_crds(kube)


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
        watcher_args=["--heartbeat-timeout=5"],
    ).start()
    yield orch
    orch.stop()
