"""Shared bits of the benchmarks: statistics, the result file, and a sim + Temporal + orchestrator to
measure against."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import statistics
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from temporalio.runtime import Runtime

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.crds import install_crds
from rbg_flows.sim.build import ensure_binaries
from rbg_flows.sim.launch import launch_sim, launched_webhook
from rbg_flows.temporal import run_with_runtime, start_dev_server
from tests.integration.orchestrator import Orchestrator

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_AGENT = "rbg-flows-bench"
# Processes of a bench run, by what their command line contains (first match wins).
COMPONENTS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
    " worker",
    " watcher",
    "sim serve",
    "temporal server",
)
# A result is a JSON value: an object of figures, or (chaos) a list of rows.
BenchMain = Callable[[Any, Path, Runtime], Coroutine[Any, Any, Any]]


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


def _descendants(root: int) -> set[int]:
    """`root` and every process below it: other benchmarks on the machine run processes of the same
    names, which must not be counted."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cpu_by_component(root: int | None = None) -> dict[str, float]:
    """CPU seconds used so far by each process of this run (below `root`, default this process), named by
    role (worker, watcher, kube-apiserver, ...; see COMPONENTS); `root` itself is "bench" (its clients,
    e.g. a floor's, do their work there)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    top = root or os.getpid()
    for pid in _descendants(top):
        proc = Path("/proc") / str(pid)
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        names = ["bench"] if pid == top else [n for n in COMPONENTS if n in cmd]
        if names:
            key = names[0].strip()
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per component between two `cpu_by_component` readings."""
    return {k: round(after[k] - before.get(k, 0.0), 3) for k in after}


def write_result(name: str, result: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True))
    return path


@contextlib.asynccontextmanager
async def orchestrated(
    base: Path, runtime: Runtime, *sim_args: str, audit_log: Path | None = None
) -> AsyncIterator[tuple[KubeClient, Any]]:
    """A sim (with `sim_args`), a Temporal dev server and the real worker and watcher processes watching
    `bench-*` namespaces; yields a client of the sim and the Temporal environment. With `audit_log` the
    sim's API server writes its audit log there (bench/_audit.py reads it)."""
    async with orchestrated_processes(base, runtime, *sim_args, audit_log=audit_log) as (kube, env, _):
        yield kube, env


@contextlib.asynccontextmanager
async def orchestrated_processes(
    base: Path,
    runtime: Runtime | None,
    *sim_args: str,
    audit_log: Path | None = None,
    worker_args: tuple[str, ...] = (),
) -> AsyncIterator[tuple[KubeClient, Any, Orchestrator]]:
    """`orchestrated`, also yielding the worker and watcher processes (their pids, for CPU and memory)."""
    proc, kubeconfig = launch_sim(base / "sim", *sim_args, log_level="warning", audit_log=audit_log)
    env = await start_dev_server(runtime)
    orch = None
    try:
        # The bench's own requests (the user's creates, its waits) are known by this agent in the audit log.
        async with await KubeClient.from_kubeconfig(kubeconfig, agent=BENCH_AGENT) as kube:
            await install_crds(kube, conversion_client_config=launched_webhook(base / "sim"))
            address = str(env.client.service_client.config.target_host)
            orch = Orchestrator(
                address, kubeconfig, "bench", base, ["bench-*"], worker_args=list(worker_args)
            ).start()
            yield kube, env, orch
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
