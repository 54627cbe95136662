"""Benchmark the sim: cold start to ready (binaries cached), pods driven to Ready per second for 3,000 pods
on 1,000 nodes against the API server's own pod-creation rate in the same run, and the node simulator's
CPU and memory.

    .venv/bin/python bench/sim.py [--runs 3] [--pods 3000] [--nodes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import summary, write_result
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.wait import is_ready
from rbg_flows.sim.build import ensure_binaries
from rbg_flows.sim.launch import launch_sim
from rbg_flows.sim.procs import ManagedProcess

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(base: Path, *args: str) -> tuple[ManagedProcess, Path, float]:
    t0 = time.monotonic()
    proc, kubeconfig = launch_sim(base, *args, log_level="warning", timeout=600)
    return proc, kubeconfig, time.monotonic() - t0


async def drive_pods(kubeconfig: Path, pods: int, sim_pid: int) -> dict[str, Any]:
    ns = "bench"
    async with await KubeClient.from_kubeconfig(kubeconfig, max_connections=64) as kube:
        await kube.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
        for _ in range(100):  # the namespace's default service account gates pod creation
            if await kube.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"):
                break
            await asyncio.sleep(0.1)
        ready: set[str] = set()
        bound: set[str] = set()
        all_ready = asyncio.Event()
        marks: dict[str, float] = {}

        def on_event(kind: str, obj: dict[str, Any]) -> None:
            if kind != "DELETED" and obj["spec"].get("nodeName"):
                bound.add(obj["metadata"]["name"])
                if len(bound) >= pods and "bound" not in marks:
                    marks["bound"] = time.monotonic()
            if kind != "DELETED" and is_ready(obj):
                ready.add(obj["metadata"]["name"])
                if len(ready) >= pods:
                    all_ready.set()

        watcher = asyncio.create_task(list_and_watch(kube, f"/api/v1/namespaces/{ns}/pods", on_event))
        sem = asyncio.Semaphore(48)

        async def create(i: int) -> None:
            async with sem:
                await kube.create(
                    f"/api/v1/namespaces/{ns}/pods",
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": f"p-{i}"},
                        "spec": {
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "engine:1",
                                    "resources": {
                                        "requests": {"nvidia.com/gpu": "1"},
                                        "limits": {"nvidia.com/gpu": "1"},
                                    },
                                }
                            ]
                        },
                    },
                )

        cpu0 = cpu_seconds(sim_pid)
        t0 = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(pods)))
        created = time.monotonic() - t0
        await asyncio.wait_for(all_ready.wait(), timeout=900)
        done = time.monotonic() - t0
        cpu = cpu_seconds(sim_pid) - cpu0
        watcher.cancel()
        scheduled = marks["bound"] - t0
        return {
            "pods": pods,
            "create_seconds": created,
            "all_ready_seconds": done,
            "all_scheduled_seconds": scheduled,
            "ready_after_scheduled_seconds": done - scheduled,
            "create_rate": pods / created,
            "ready_rate": pods / done,
            "keep_up_ratio": done / created,
            "nodesim_cpu_seconds": cpu,
            "nodesim_cpu_share_of_core": cpu / done,
            "nodesim_rss_mb_peak": rss_mb(sim_pid),
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pods", type=int, default=3000)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--ready-delay", type=float, default=1.0)
    args = ap.parse_args()
    ensure_binaries()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        starts = []
        for i in range(args.runs):
            proc, _, seconds = start(Path(tmp) / f"cold{i}", "--no-lws")
            starts.append(seconds)
            proc.stop()
        result["cold_start_seconds"] = summary(starts)
        print(
            "cold start to ready (binaries cached, 18 nodes, no LWS): "
            f"median {summary(starts)['median']:.2f}s"
        )

        proc, kubeconfig, seconds = start(
            Path(tmp) / "big", f"--nodes={args.nodes}", "--no-lws", f"--ready-delay={args.ready_delay}"
        )
        assert proc.pid is not None
        result["start_with_nodes_seconds"] = seconds
        print(f"start with {args.nodes} nodes to all Ready: {seconds:.1f}s")
        try:
            time.sleep(5)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(20)
            idle = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            result["nodesim_idle_cpu_share_of_core"] = idle
            result["nodesim_idle_rss_mb"] = rss_mb(proc.pid)
            print(
                f"node simulator idle with {args.nodes} nodes (lease renewals): {idle * 100:.1f}% of a core, "
                f"RSS {result['nodesim_idle_rss_mb']:.0f} MB"
            )
            run = asyncio.run(drive_pods(kubeconfig, args.pods, proc.pid))
            result["pods"] = run
            print(
                f"{args.pods} pods on {args.nodes} nodes: created in {run['create_seconds']:.1f}s "
                f"({run['create_rate']:.0f}/s, the API server + scheduler baseline), all Ready in "
                f"{run['all_ready_seconds']:.1f}s ({run['ready_rate']:.0f} pods/s); keep-up ratio "
                f"{run['keep_up_ratio']:.2f} (1.0 = Ready as fast as created; "
                f"ready delay {args.ready_delay}s)"
            )
            print(
                f"  all bound by the real scheduler after {run['all_scheduled_seconds']:.1f}s; "
                f"the last pod Ready {run['ready_after_scheduled_seconds']:.2f}s after the last bind "
                f"(ready delay {args.ready_delay}s)"
            )
            print(
                f"node simulator during the burst: {run['nodesim_cpu_share_of_core'] * 100:.0f}% of a core, "
                f"RSS {run['nodesim_rss_mb_peak']:.0f} MB"
            )
        finally:
            proc.stop()
    print(f"written {write_result('sim', result)}")


if __name__ == "__main__":
    main()
