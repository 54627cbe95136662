"""Shared bits of the benchmarks: statistics, the result file, and a sim + Temporal + orchestrator to
measure against."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from rbg_flows.install import install_crds
from rbg_flows.kube.client import KubeClient
from rbg_flows.sim.build import ensure_binaries
from rbg_flows.sim.launch import launch_sim
from rbg_flows.temporal import run_with_runtime
from rbg_flows.workflows.entity import SEARCH_ATTRIBUTES
from tests.integration.orchestrator import Orchestrator

RESULTS = Path(__file__).resolve().parent / "results"
BenchMain = Callable[[Any, Path, Runtime], Coroutine[Any, Any, dict[str, Any]]]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "median": statistics.median(ordered),
        "p99": p99,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True))
    return path


@contextlib.asynccontextmanager
async def orchestrated(base: Path, runtime: Runtime, *sim_args: str) -> AsyncIterator[tuple[KubeClient, Any]]:
    """A sim (with `sim_args`), a Temporal dev server and the real worker and watcher processes watching
    `bench-*` namespaces; yields a client of the sim and the Temporal environment."""
    proc, kubeconfig = launch_sim(base / "sim", *sim_args, log_level="warning")
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    orch = None
    try:
        async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
            await install_crds(kube)
            address = str(env.client.service_client.config.target_host)
            orch = Orchestrator(address, kubeconfig, "bench", base, ["bench-*"]).start()
            yield kube, env
    finally:
        if orch:
            orch.stop()
        await env.shutdown()
        proc.stop()


def run_bench(name: str, main: BenchMain, args: Any) -> None:
    """Build the sim if needed, run `main(args, scratch dir, runtime)`, write its result file."""
    ensure_binaries(with_lws=False)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_with_runtime(lambda runtime: main(args, Path(tmp), runtime))
    print(f"written {write_result(name, copy.deepcopy(result))}")
