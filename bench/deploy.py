"""Orchestration overhead and throughput of deploys (targets in ../shared/targets.md):

1. Floor: apply the exact objects rbg_flows would create for a 3-role group (router -> prefill, decode)
   directly, in dependency order, waiting for readiness between levels: apply -> all ready.
2. Measured: create the RoleBasedGroup -> Ready=True, same group, same cluster, same run.
3. Throughput: N groups x 3 roles created at R groups/s: create -> Ready p50/p99; nothing left behind.

    .venv/bin/python bench/deploy.py [--runs 5] [--groups 100] [--rate 10] [--ready-delay 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.runtime import Runtime

from bench._common import orchestrated, run_bench, summary
from rbg_flows.activities.cache import WorkloadCache
from rbg_flows.activities.workloads import CONFIGMAP, KINDS, SERVICE, readiness
from rbg_flows.api import STATEFULSET, RoleBasedGroup, dependency_levels
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.wait import WaitTimeout, wait_for
from rbg_flows.manifests.discovery import discovery_configmap
from rbg_flows.manifests.service import build_headless_service
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.workflows.types import FIELD_MANAGER

ROOT = Path(__file__).resolve().parents[1]
RBG_API = "/apis/workloads.x-k8s.io/v1alpha1"


def group(name: str, replicas: int, *, levels: bool = True) -> dict[str, Any]:
    """The PD example; `levels=False` drops the router's dependencies (one level: the D + 0.5 s target)."""
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "pd-disaggregation.yaml").read_text())
    body["metadata"] = {"name": name}
    for role in body["spec"]["roles"]:
        role["replicas"] = replicas if role["name"] != "router" else 1
        if not levels:
            role.pop("dependencies", None)
    return body


async def new_namespace(kube: KubeClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await kube.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    # Pods are refused until the namespace's default service account exists.
    await wait_for(kube, f"/api/v1/namespaces/{name}/serviceaccounts", lambda o: "default" in o, timeout=30)
    return name


async def wait_ready(cache: WorkloadCache, ns: str, wanted: list[tuple[str, str, int]]) -> None:
    """Wait on the worker's own shared watch cache until every (kind, name, replicas) is ready."""
    for key, name, replicas in wanted:
        kind = KINDS[key]
        await cache.ensure(kind)
        with cache.subscribe(kind, ns, name) as changed:
            while not readiness(key, cache.get(kind, ns, name), replicas, 1).done:
                await changed.wait()
                changed.clear()


async def floor_group(kube: KubeClient, ns: str, cache: WorkloadCache, body: dict[str, Any]) -> float:
    """Apply the objects rbg_flows would create for `body`, level by level, straight to the API server."""
    # An owner that exists (GC would delete objects owned by nobody) but that no watcher acts on.
    owner = await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)
    rbg = RoleBasedGroup.model_validate(owner)
    t0 = time.monotonic()
    cm = discovery_configmap(rbg)
    await kube.apply(CONFIGMAP.path(ns, cm["metadata"]["name"]), cm, FIELD_MANAGER)
    for level in dependency_levels(rbg.spec.roles):
        wanted: list[tuple[str, str, int]] = []

        async def apply(role_name: str, wanted: list[tuple[str, str, int]] = wanted) -> None:
            role = rbg.spec.role(role_name)
            kind = KINDS[role.workload.key]
            if kind.key == STATEFULSET:
                svc = build_headless_service(rbg, role)
                await kube.apply(SERVICE.path(ns, svc["metadata"]["name"]), svc, FIELD_MANAGER)
            w = build_workload(rbg, role)
            await kube.apply(kind.path(ns, w["metadata"]["name"]), w, FIELD_MANAGER)
            wanted.append((kind.key, w["metadata"]["name"], role.replicas))

        await asyncio.gather(*(apply(r) for r in level))
        await wait_ready(cache, ns, wanted)
    return time.monotonic() - t0


async def floor_once(kube: KubeClient, replicas: int) -> float:
    ns = await new_namespace(kube, "floor")
    cache = WorkloadCache(kube)
    try:
        elapsed = await floor_group(kube, ns, cache, group("pd", replicas))
    finally:
        await cache.close()
    await kube.delete(f"/api/v1/namespaces/{ns}")
    return elapsed


async def floor_throughput(kube: KubeClient, groups: int, rate: float) -> dict[str, Any]:
    """The same groups at the same rate, applied directly: what this machine can do without rbg_flows."""
    ns = await new_namespace(kube, "floor-tp")
    cache = WorkloadCache(kube)
    start = time.monotonic()
    tasks = []
    for i in range(groups):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(floor_group(kube, ns, cache, group(f"g{i:03d}", 1, levels=False))))
    latencies = await asyncio.gather(*tasks)
    await cache.close()
    await kube.delete(f"/api/v1/namespaces/{ns}")
    # The namespace's pods must be gone before the measured run needs their GPUs.
    await wait_for(
        kube, "/api/v1/namespaces", lambda o: ns not in o, timeout=300, what="floor namespace gone"
    )
    return {"groups": groups, "rate": rate, "create_to_ready": summary(list(latencies))}


async def measured_once(kube: KubeClient, ns: str, name: str, replicas: int) -> float:
    ready = asyncio.Event()

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        conds = (obj.get("status") or {}).get("conditions") or []
        if (
            any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
            and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
        ):
            ready.set()

    synced = asyncio.Event()
    watch = asyncio.create_task(
        list_and_watch(
            kube,
            f"{RBG_API}/namespaces/{ns}/rolebasedgroups",
            on_event,
            on_synced=synced.set,
            params={"fieldSelector": f"metadata.name={name}"},
        )
    )
    await synced.wait()  # the watch is established before the clock starts
    t0 = time.monotonic()
    await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", group(name, replicas))
    await ready.wait()
    elapsed = time.monotonic() - t0
    watch.cancel()
    return elapsed


def cpu_by_component() -> dict[str, float]:
    """CPU seconds used so far by each process of the run, named by role (worker, watcher, sim, ...)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        names = [
            n
            for n in (
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "etcd",
                " worker",
                " watcher",
                "sim serve",
                "temporal server",
            )
            if n in cmd
        ]
        if names:
            key = names[0].strip()
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def throughput(kube: KubeClient, groups: int, rate: float) -> dict[str, Any]:
    ns = await new_namespace(kube, "bench-tp")
    created: dict[str, float] = {}
    done: dict[str, float] = {}
    all_done = asyncio.Event()

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        st = obj.get("status") or {}
        if (
            name in created
            and name not in done
            and st.get("observedGeneration") == obj["metadata"]["generation"]
            and any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
        ):
            done[name] = time.monotonic()
            if len(done) == groups:
                all_done.set()

    synced = asyncio.Event()
    watch = asyncio.create_task(
        list_and_watch(kube, f"{RBG_API}/namespaces/{ns}/rolebasedgroups", on_event, on_synced=synced.set)
    )
    await synced.wait()
    cpu0 = cpu_by_component()
    start = time.monotonic()
    creates = []
    for i in range(groups):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        name = f"g{i:03d}"
        created[name] = time.monotonic()
        creates.append(
            asyncio.create_task(
                kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", group(name, 1, levels=False))
            )
        )
    await asyncio.gather(*creates)
    await asyncio.wait_for(all_done.wait(), timeout=600)
    watch.cancel()
    cpu1 = cpu_by_component()
    cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
    latencies = [done[n] - created[n] for n in created]
    # Nothing left behind: delete every group; every workload and pod must go.
    await kube.request("DELETE", f"{RBG_API}/namespaces/{ns}/rolebasedgroups")
    leftovers = 0
    for path in (
        f"/api/v1/namespaces/{ns}/pods",
        f"/apis/apps/v1/namespaces/{ns}/statefulsets",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
    ):
        try:
            await wait_for(kube, path, lambda o: not o, timeout=120, what=f"{path} empty")
        except WaitTimeout as e:
            leftovers += len(e.last)
    return {
        "groups": groups,
        "rate": rate,
        "create_to_ready": summary(latencies),
        "left_behind": leftovers,
        "cpu_seconds": cpu,
        "seconds": max(done.values()) - start,
    }


async def main_async(args: argparse.Namespace, base: Path, runtime: Runtime) -> dict[str, Any]:
    # 64 nodes x 8 GPUs: room for every group of the run (each PD group asks 2-4 GPUs).
    sim_args = ("--no-lws", "--nodes=64", f"--ready-delay={args.ready_delay}")
    async with orchestrated(base, runtime, *sim_args) as (kube, _):
        ns = await new_namespace(kube, "bench-ovh")
        await measured_once(kube, ns, "warmup", args.replicas)  # first workflow pays imports/caches
        floors, measured = [], []
        for i in range(args.runs):
            floors.append(await floor_once(kube, args.replicas))
            measured.append(await measured_once(kube, ns, f"pd{i}", args.replicas))
            print(f"  run {i + 1}: floor {floors[-1]:.3f}s  rbg_flows {measured[-1]:.3f}s", flush=True)
        f, m = summary(floors), summary(measured)
        result: dict[str, Any] = {
            "ready_delay": args.ready_delay,
            "replicas": args.replicas,
            "floor": f,
            "measured": m,
            "overhead_ratio": m["median"] / f["median"],
            "overhead_ms": (m["median"] - f["median"]) * 1000,
        }
        print(
            f"3-role group (router -> prefill x{args.replicas}, decode x{args.replicas}), "
            f"pods Ready after {args.ready_delay}s:"
        )
        print(f"  floor (direct apply in dependency order): median {f['median']:.3f}s")
        print(f"  rbg_flows (create RBG -> Ready=True):     median {m['median']:.3f}s")
        print(
            f"  overhead ratio {result['overhead_ratio']:.3f} (target <= 1.2), "
            f"absolute {result['overhead_ms']:.0f} ms (target <= 150 ms)"
        )
        if args.groups:
            ftp = await floor_throughput(kube, args.groups, args.rate)
            fc = ftp["create_to_ready"]
            result["throughput_floor"] = ftp
            print(
                f"{args.groups} groups x 3 roles at {args.rate}/s, floor (direct apply): "
                f"p50 {fc['median']:.2f}s p99 {fc['p99']:.2f}s"
            )
            tp = await throughput(kube, args.groups, args.rate)
            result["throughput"] = tp
            c = tp["create_to_ready"]
            print(
                f"{args.groups} groups x 3 roles at {args.rate}/s: create->Ready p50 {c['median']:.2f}s "
                f"p99 {c['p99']:.2f}s (targets {args.ready_delay + 0.5:.1f}s / "
                f"{args.ready_delay + 1.5:.1f}s); "
                f"left behind after delete: {tp['left_behind']}"
            )
            print(
                f"  ratio to the floor: p50 {c['median'] / fc['median']:.2f}, p99 {c['p99'] / fc['p99']:.2f}"
            )
            print(
                f"  CPU seconds over the {tp['seconds']:.1f}s run: "
                + ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(tp["cpu_seconds"].items(), key=lambda kv: -kv[1])
                )
            )
        return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--ready-delay", type=float, default=1.0)
    args = ap.parse_args()
    run_bench("deploy", main_async, args)


if __name__ == "__main__":
    main()
