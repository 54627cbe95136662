"""What the workflow sandbox costs the worker, measured to decide which workflow runner it uses.

N groups (the PD example, 3 roles) go through the real entity and Deploy workflows on a local Temporal
dev server with the stand-in activities of the workflow tests (no cluster: only the workflow code's cost
differs between runs). Each workflow runner is measured `--rounds` times in alternation; the figures are
the medians of the CPU-seconds per group of this process (the worker: its Python and its Rust core) and of
the Temporal server, and the wall time for the whole batch.

    .venv/bin/python bench/sandbox.py [--groups 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench._common import write_result
from rbg_flows.temporal import run_with_runtime, start_dev_server
from rbg_flows.watcher.signaller import Signaller
from rbg_flows.worker import WORKFLOWS, sandbox_runner
from tests.workflows.standins import CLUSTER, StandIns

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pd-disaggregation.yaml"

RUNNERS: dict[str, WorkflowRunner] = {
    "sandboxed (SDK default)": SandboxedWorkflowRunner(),
    "sandboxed, every module passed through": SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
    ),
    "unsandboxed": UnsandboxedWorkflowRunner(),
}
CHOSEN = "rbg_flows.worker.sandbox_runner()"


def children_cpu(name: str) -> float:
    """CPU-seconds of this process's children whose command line contains `name` (the dev server)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and name in cmd:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def one_batch(env: WorkflowEnvironment, runner: WorkflowRunner, groups: int) -> dict[str, float]:
    standins = StandIns()
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    signaller = Signaller(env.client, queue, CLUSTER)
    template = yaml.safe_load(EXAMPLE.read_text())
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=list(WORKFLOWS),
        activities=list(standins.activities()),
        workflow_runner=runner,
        max_concurrent_activities=2000,
    ):
        cpu0, server0, t0 = time.process_time(), children_cpu("temporal"), time.monotonic()
        for i in range(groups):
            obj: dict[str, Any] = yaml.safe_load(yaml.safe_dump(template))
            name = f"g{i:04d}-{queue[-4:]}"
            obj["metadata"].update(name=name, namespace="bench", uid=str(uuid.uuid4()), generation=1)
            standins.rbg_objects[name] = obj
            await signaller.spec(obj)
        # Done once every group's Deploy wrote its last report (read from the stand-ins: no queries,
        # which would add work to the worker being measured).
        while standins.calls.events().count("DeploySucceeded") < groups:  # noqa: ASYNC110 (no event to await)
            await asyncio.sleep(0.05)
        wall = time.monotonic() - t0
        cpu, server = time.process_time() - cpu0, children_cpu("temporal") - server0
    return {"worker_cpu_per_group": cpu / groups, "server_cpu_per_group": server / groups, "seconds": wall}


async def main_async(args: argparse.Namespace, runtime: Runtime) -> dict[str, Any]:
    env = await start_dev_server(runtime)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in RUNNERS}
    try:
        await one_batch(env, SandboxedWorkflowRunner(), min(20, args.groups))  # warm-up: imports, caches
        for r in range(args.rounds):
            for name, runner in RUNNERS.items():
                samples[name].append(await one_batch(env, runner, args.groups))
                s = samples[name][-1]
                print(
                    f"  round {r + 1} {name}: worker {s['worker_cpu_per_group'] * 1000:.1f} ms/group, "
                    f"server {s['server_cpu_per_group'] * 1000:.1f} ms/group, {s['seconds']:.1f}s",
                    flush=True,
                )
    finally:
        await env.shutdown()
    result: dict[str, Any] = {"groups": args.groups, "rounds": args.rounds, "runners": {}}
    base = statistics.median(s["worker_cpu_per_group"] for s in samples["sandboxed (SDK default)"])
    print(f"{args.groups} groups x 3 roles through the entity and Deploy workflows (stand-in activities):")
    for name, runs in samples.items():
        med = {k: statistics.median(s[k] for s in runs) for k in runs[0]}
        result["runners"][name] = med
        print(
            f"  {name:40s} worker {med['worker_cpu_per_group'] * 1000:6.1f} ms/group "
            f"({med['worker_cpu_per_group'] / base:.2f} x default), "
            f"Temporal server {med['server_cpu_per_group'] * 1000:5.1f} ms/group, batch {med['seconds']:.1f}s"
        )
    chosen = sandbox_runner()
    result["chosen"] = next(
        (n for n, r in RUNNERS.items() if type(r) is type(chosen) and _same(r, chosen)), "other"
    )
    print(f"  the worker uses ({CHOSEN}): {result['chosen']}")
    return result


def _same(a: WorkflowRunner, b: WorkflowRunner) -> bool:
    if isinstance(a, SandboxedWorkflowRunner) and isinstance(b, SandboxedWorkflowRunner):
        ra, rb = a.restrictions, b.restrictions
        return ra.passthrough_all_modules == rb.passthrough_all_modules
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    result = run_with_runtime(lambda runtime: main_async(args, runtime))
    print(f"written {write_result('sandbox', result)}")


if __name__ == "__main__":
    main()
