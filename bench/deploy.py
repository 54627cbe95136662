"""Orchestration overhead, throughput and cost of deploys (targets in ../shared/targets.md):

1. Floor: apply the exact objects rbg_flows would create for a 3-role group (router -> prefill, decode)
   directly, in dependency order, waiting for readiness between levels: apply -> all ready.
2. Measured: create the RoleBasedGroup -> Ready=True, same group, same cluster, same run.
3. Throughput: N groups x 3 roles created at R groups/s: create -> Ready p50/p99; nothing left behind;
   the floor applies the same objects at the same rate.

For the single-group runs and for the throughput run, per group and per operation, against the floor:

- CPU seconds of each process of the run (worker, watcher, Temporal server, kube-apiserver, etcd, ...);
- Kubernetes API requests by verb, counted at the API server from its audit log and told apart by
  User-Agent (bench/_audit.py): rbg_flows' worker and watcher in the groups' namespaces, against the
  floor's client in its namespaces; cluster-wide requests (lists, watches) apart;
- Temporal billable actions and history events, from the server's histories of the groups' entity and
  operation workflows (bench/_actions.py, bench/_histories.py).

    .venv/bin/python bench/deploy.py [--runs 5] [--groups 100] [--rate 10] [--ready-delay 1.0] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.client import Client
from temporalio.runtime import Runtime

from bench import _audit
from bench._common import cpu_by_component, cpu_used, orchestrated, run_bench, summary
from bench._histories import group_costs, per_operation
from rbg_flows.api import DEPLOYMENT, STATEFULSET, RoleBasedGroup, dependency_levels
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.kinds import CONFIGMAP, KINDS, SERVICE
from rbg_flows.kube.wait import WaitTimeout, wait_for
from rbg_flows.manifests.discovery import discovery_configmap
from rbg_flows.manifests.service import build_headless_service
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.rollout.readiness import readiness

ROOT = Path(__file__).resolve().parents[1]
RBG_API = "/apis/workloads.x-k8s.io/v1alpha1"
FLOOR_AGENT = "rbg-flows-bench/floor"
RBG_FLOWS = ("worker", "watcher")
ROLES = 3
# Seconds after a run before its window closes: the worker's last writes (status, Events) after the
# group turned Ready belong to the group.
SETTLE = 1.0


class Windows:
    """Wall-clock spans of the measured and the floor runs of one phase, and the CPU used in them."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.cpu: dict[str, float] = {}
        self._begin = 0.0
        self._cpu0: dict[str, float] = {}

    def open(self) -> None:
        self._begin, self._cpu0 = time.time(), cpu_by_component()

    def close(self) -> None:
        self.spans.append((self._begin, time.time()))
        for k, v in cpu_used(self._cpu0, cpu_by_component()).items():
            self.cpu[k] = self.cpu.get(k, 0.0) + v


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


async def floor_group(
    kube: KubeClient, ns: str, cache: WorkloadCache, body: dict[str, Any], user: KubeClient | None = None
) -> float:
    """Apply the objects rbg_flows would create for `body`, level by level, straight to the API server.
    The owner is created by `user` (default `kube`): the user's part, as in the measured run."""
    # An owner that exists (GC would delete objects owned by nobody) but that no watcher acts on.
    owner = await (user or kube).create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)
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


async def floor_cache(floor: KubeClient) -> WorkloadCache:
    """The floor's watch cache, listed and watching before any window opens (the worker's is too)."""
    cache = WorkloadCache(floor)
    for key in (STATEFULSET, DEPLOYMENT):
        await cache.ensure(KINDS[key])
    return cache


async def floor_once(
    kube: KubeClient, floor: KubeClient, cache: WorkloadCache, replicas: int
) -> tuple[str, float]:
    ns = await new_namespace(kube, "floor")
    return ns, await floor_group(floor, ns, cache, group("pd", replicas), user=kube)


async def delete_namespaces(kube: KubeClient, names: list[str]) -> None:
    for ns in names:
        await kube.delete(f"/api/v1/namespaces/{ns}")
    # Their pods must be gone before the next phase needs their GPUs.
    await wait_for(
        kube,
        "/api/v1/namespaces",
        lambda o: not set(names) & set(o),
        timeout=300,
        what="floor namespaces gone",
    )


async def floor_throughput(
    kube: KubeClient, floor: KubeClient, groups: int, rate: float, windows: Windows
) -> dict[str, Any]:
    """The same groups at the same rate, applied directly: what this machine can do without rbg_flows."""
    ns = await new_namespace(kube, "floor-tp")
    cache = await floor_cache(floor)
    windows.open()
    start = time.monotonic()
    tasks = []
    for i in range(groups):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        body = group(f"g{i:03d}", 1, levels=False)
        tasks.append(asyncio.create_task(floor_group(floor, ns, cache, body, user=kube)))
    latencies = await asyncio.gather(*tasks)
    await asyncio.sleep(SETTLE)
    windows.close()
    await cache.close()
    await delete_namespaces(kube, [ns])
    return {
        "groups": groups,
        "rate": rate,
        "namespace": ns,
        "create_to_ready": summary(list(latencies)),
        "cpu_seconds": {k: round(v, 2) for k, v in windows.cpu.items()},
    }


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


async def throughput(kube: KubeClient, groups: int, rate: float, windows: Windows) -> dict[str, Any]:
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
    windows.open()
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
    await asyncio.sleep(SETTLE)
    windows.close()
    latencies = [done[n] - created[n] for n in created]
    return {
        "groups": groups,
        "rate": rate,
        "namespace": ns,
        "names": sorted(created),
        "create_to_ready": summary(latencies),
        "cpu_seconds": {k: round(v, 2) for k, v in windows.cpu.items()},
        "seconds": max(done.values()) - start,
    }


async def left_behind(kube: KubeClient, ns: str) -> int:
    """Delete every group of `ns`; every workload and pod must go."""
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
    return leftovers


def per_group(cpu: dict[str, float], groups: int) -> dict[str, float]:
    out = {k: round(v / groups, 4) for k, v in sorted(cpu.items())}
    out["rbg_flows_total"] = round(sum(cpu.get(k, 0.0) for k in (*RBG_FLOWS, "temporal server")) / groups, 4)
    return out


def request_costs(
    requests: list[_audit.Request],
    groups: int,
    measured: Windows,
    measured_ns: set[str],
    floor: Windows,
    floor_ns: set[str],
) -> dict[str, Any]:
    """API requests per group: rbg_flows' in the groups' namespaces against the floor's in its own, and
    each side's cluster-wide ones made during its runs (totals: they serve every group at once)."""
    ours = _audit.select(
        requests, clients=RBG_FLOWS, windows=measured.spans, namespaces=measured_ns.__contains__
    )
    theirs = _audit.select(
        requests, clients=("floor",), windows=floor.spans, namespaces=floor_ns.__contains__
    )
    ours_wide = _audit.select(requests, clients=RBG_FLOWS, windows=measured.spans, namespaces=lambda n: not n)
    theirs_wide = _audit.select(requests, clients=("floor",), windows=floor.spans, namespaces=lambda n: not n)
    a, b = _audit.tally(ours, groups), _audit.tally(theirs, groups)
    return {
        "rbg_flows": a,
        "floor": b,
        "ratio": round(a["total"] / b["total"], 2) if b["total"] else None,
        "cluster_wide_total": {"rbg_flows": _audit.tally(ours_wide), "floor": _audit.tally(theirs_wide)},
    }


def cost(
    groups: int,
    measured: Windows,
    floor: Windows,
    requests: dict[str, Any],
    temporal: dict[str, Any],
) -> dict[str, Any]:
    return {
        "groups": groups,
        "cpu_seconds_per_group": {
            "rbg_flows": per_group(measured.cpu, groups),
            "floor": per_group(floor.cpu, groups),
        },
        "api_requests_per_group": requests,
        "temporal_per_operation": temporal,
    }


async def temporal_cost(client: Client, ns: str, names: list[str]) -> dict[str, Any]:
    return per_operation(await group_costs(client, ns, names))


def fmt(counts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def report(title: str, c: dict[str, Any]) -> None:
    """The cost block of one phase, as a table."""
    print(f"\n{title}: cost per group ({c['groups']} groups)")
    cpu_m, cpu_f = c["cpu_seconds_per_group"]["rbg_flows"], c["cpu_seconds_per_group"]["floor"]
    print(f"  {'CPU-seconds per group':<34}{'rbg_flows':>10}{'floor':>10}")
    for k in sorted(set(cpu_m) | set(cpu_f), key=lambda k: -cpu_m.get(k, 0.0)):
        print(f"  {k:<34}{cpu_m.get(k, 0.0):>10.3f}{cpu_f.get(k, 0.0):>10.3f}")
    print("    (rbg_flows_total = worker + watcher + Temporal server; target <= 0.05)")
    req = c["api_requests_per_group"]
    m, f = req["rbg_flows"], req["floor"]
    print(f"  {'API requests per group, by verb':<34}{'rbg_flows':>10}{'floor':>10}{'ratio':>8}")
    for verb in sorted(set(m["by_verb"]) | set(f["by_verb"])):
        a, b = m["by_verb"].get(verb, 0.0), f["by_verb"].get(verb, 0.0)
        print(f"  {verb:<34}{a:>10g}{b:>10g}{(f'{a / b:.2f}' if b else '-'):>8}")
    ratio = req["ratio"]
    print(
        f"  {'total (target ratio <= 1.5)':<34}{m['total']:>10g}{f['total']:>10g}{ratio if ratio else '-':>8}"
    )
    print(f"    rbg_flows by client: {fmt(m['by_client_verb'])}")
    print(f"    rbg_flows by resource: {fmt(m['by_verb_resource'])}")
    print(f"    floor by resource: {fmt(f['by_verb_resource'])}")
    wide = req["cluster_wide_total"]
    print(
        f"    cluster-wide during the runs (totals): rbg_flows {fmt(wide['rbg_flows']['by_client_verb'])}; "
        f"floor {fmt(wide['floor']['by_client_verb'])}"
    )
    t = c["temporal_per_operation"]
    print(
        f"  Temporal per operation ({t['operations']} operations): {t['actions'].get('total', 0):g} billable "
        f"actions (target <= {3 + 2 * ROLES}: 3 + 2 per role), {t['history_events']:g} history events"
    )
    for wf_type, acts in t["actions_by_workflow"].items():
        print(f"    {wf_type}: {fmt(acts)}")
    print(f"    events: {fmt(t['history_events_by_type'])}")
    print("    (heartbeats and queries are billed but not in the histories: not counted)")


async def main_async(args: argparse.Namespace, base: Path, runtime: Runtime) -> dict[str, Any]:
    # 64 nodes x 8 GPUs: room for every group of the run (each PD group asks 2-4 GPUs).
    sim_args = ("--no-lws", "--nodes=64", f"--ready-delay={args.ready_delay}")
    audit_log = args.audit_log or base / "audit.log"
    async with orchestrated(base, runtime, *sim_args, audit_log=audit_log) as (kube, env):
        client: Client = env.client
        floor = KubeClient(kube.cfg, agent=FLOOR_AGENT)
        ns = await new_namespace(kube, "bench-ovh")
        await measured_once(kube, ns, "warmup", args.replicas)  # first workflow pays imports/caches
        cache = await floor_cache(floor)
        floors, measured, floor_nss = [], [], []
        fw, mw = Windows(), Windows()
        for i in range(args.runs):
            fw.open()
            floor_ns, elapsed = await floor_once(kube, floor, cache, args.replicas)
            await asyncio.sleep(SETTLE)
            fw.close()
            floors.append(elapsed)
            floor_nss.append(floor_ns)
            mw.open()
            measured.append(await measured_once(kube, ns, f"pd{i}", args.replicas))
            await asyncio.sleep(SETTLE)
            mw.close()
            print(f"  run {i + 1}: floor {floors[-1]:.3f}s  rbg_flows {measured[-1]:.3f}s", flush=True)
        await cache.close()
        single_temporal = await temporal_cost(client, ns, [f"pd{i}" for i in range(args.runs)])
        f, m = summary(floors), summary(measured)
        result: dict[str, Any] = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["bench/deploy.py", *sys.argv[1:]]),
            "runs": args.runs,
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
        await delete_namespaces(kube, floor_nss)
        tp_floor_w, tp_w = Windows(), Windows()
        if args.groups:
            ftp = await floor_throughput(kube, floor, args.groups, args.rate, tp_floor_w)
            fc = ftp["create_to_ready"]
            result["throughput_floor"] = ftp
            print(
                f"{args.groups} groups x 3 roles at {args.rate}/s, floor (direct apply): "
                f"p50 {fc['median']:.2f}s p99 {fc['p99']:.2f}s"
            )
            tp = await throughput(kube, args.groups, args.rate, tp_w)
            tp_temporal = await temporal_cost(client, tp["namespace"], tp.pop("names"))
            tp["left_behind"] = await left_behind(kube, tp["namespace"])
            result["throughput"] = tp
            c = tp["create_to_ready"]
            print(
                f"{args.groups} groups x 3 roles at {args.rate}/s: create->Ready p50 {c['median']:.2f}s "
                f"p99 {c['p99']:.2f}s; left behind after delete: {tp['left_behind']}"
            )
            print(
                f"  ratio to the floor: p50 {c['median'] / fc['median']:.2f}, p99 {c['p99'] / fc['p99']:.2f} "
                "(target <= 1.2 each)"
            )
        await floor.close()
        # Every request of the run is in the log once its response started; parse it once, at the end.
        lines = audit_log.read_text().splitlines()
        requests = _audit.parse(lines)
        result["cost"] = {
            # Which process each User-Agent of the run was counted as.
            "user_agents": _audit.agents(lines),
            # Cluster-wide requests of rbg_flows and the floor over the whole run (informers' lists and
            # watches, made once for every group): context for the per-group figures.
            "cluster_wide_whole_run": _audit.tally(
                r for r in requests if not r.namespace and r.client in (*RBG_FLOWS, "floor")
            ),
            "single": cost(
                args.runs,
                mw,
                fw,
                request_costs(requests, args.runs, mw, {ns}, fw, set(floor_nss)),
                single_temporal,
            ),
        }
        if args.groups:
            result["cost"]["throughput"] = cost(
                args.groups,
                tp_w,
                tp_floor_w,
                request_costs(
                    requests,
                    args.groups,
                    tp_w,
                    {result["throughput"]["namespace"]},
                    tp_floor_w,
                    {result["throughput_floor"]["namespace"]},
                ),
                tp_temporal,
            )
        print(
            "\nUser-Agents seen: " + "; ".join(f"{a} = {c}" for a, c in result["cost"]["user_agents"].items())
        )
        wide = result["cost"]["cluster_wide_whole_run"]
        print(f"cluster-wide requests over the whole run: {fmt(wide['by_client_verb'])}")
        report("single-group runs", result["cost"]["single"])
        if args.groups:
            report(f"throughput run ({args.groups} groups at {args.rate}/s)", result["cost"]["throughput"])
        return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--ready-delay", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="a few minutes: --runs 2 --groups 20")
    ap.add_argument(
        "--audit-log", type=Path, help="keep the API server's audit log here (default: deleted with the run)"
    )
    args = ap.parse_args()
    if args.quick:
        args.runs, args.groups = 2, 20
    run_bench("deploy", main_async, args)


if __name__ == "__main__":
    main()
