"""Scale (targets in ../shared/targets.md, "Scale"): one worker and one watcher managing N groups.

1. Create N RoleBasedGroups (router -> prefill, decode, every role at 1 replica: 3 workloads and 3 pods
   each) as fast as the API server takes them: create call -> every group Ready at its generation.
2. Idle: with every group Ready and nothing changing, CPU (% of one core) of the worker, the watcher and
   the Temporal server over a window, and the RSS of each.
3. Spec change -> first activity: scale one role of a random sample of groups, rate-limited; from each
   patch to the first activity (scheduled, or local-activity marker) in the history of the Scale
   operation it started, by the server's event times (same machine, same clock).
4. Bounded history: K scale operations on one group (decode 1 <-> 2, each settled before the next);
   the entity's history length per run (continue-as-new) and the operation count.
5. Delete every group: delete call -> every workload and pod gone and no workflow of the namespace open.

    .venv/bin/python bench/scale.py [--quick] [--groups 1000] [--ops 1000] [--sample 100] [--idle 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.runtime import Runtime

from bench._common import orchestrated_processes, run_bench, summary
from bench.deploy import RBG_API, group, new_namespace
from bench.sim import cpu_seconds, rss_mb
from rbg_flows.cli.processes import cluster_id_of
from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.messages import RbgKey
from rbg_flows.temporal import temporal_binary
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

PROBE = "history"  # the first group: proves the watcher acts on the namespace, then takes the operations
ROLE = "decode"  # the role the spec changes scale (a StatefulSet, 1 <-> 2)
# Temporal warns at 10,240 events in one run (50K is the hard limit): the bound the entity must stay under.
HISTORY_BOUND = 10_240
FIRST_ACTIVITY = (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED)


def body(name: str) -> dict[str, Any]:
    """The PD example at 1 replica per role, without GPU requests: pods need only pod slots, so a few
    nodes hold 3,000 of them (resources change nothing rbg_flows does)."""
    b = group(name, 1)
    for role in b["spec"]["roles"]:
        for c in role["template"]["spec"]["containers"]:
            c.pop("resources", None)
    return b


def is_settled(obj: dict[str, Any]) -> bool:
    st = obj.get("status") or {}
    return st.get("observedGeneration") == obj["metadata"]["generation"] and any(
        c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []
    )


class Groups:
    """The namespace's RoleBasedGroups as last seen by one watch; waiters wake on every change."""

    def __init__(self, kube: KubeClient, ns: str):
        self.objs: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Condition()
        self._synced = asyncio.Event()
        self._task = asyncio.create_task(
            list_and_watch(kube, f"{RBG_API}/namespaces/{ns}/rolebasedgroups", self._on, on_synced=self._sync)
        )

    def _sync(self) -> None:
        self._synced.set()

    def _on(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.objs.pop(obj["metadata"]["name"], None)
        else:
            self.objs[obj["metadata"]["name"]] = obj
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def started(self) -> None:
        await self._synced.wait()

    def settled(self, name: str, generation: int) -> bool:
        obj = self.objs.get(name)
        return obj is not None and obj["metadata"]["generation"] >= generation and is_settled(obj)

    async def until(self, predicate: Callable[[], bool], timeout: float, progress: str = "") -> None:
        deadline = time.monotonic() + timeout
        last_print = time.monotonic()
        async with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s: {progress}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(left, 15.0))
                if progress and time.monotonic() - last_print >= 15:
                    last_print = time.monotonic()
                    done = sum(1 for o in self.objs.values() if is_settled(o))
                    print(f"    {progress}: {done}/{len(self.objs)} settled", flush=True)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def temporal_pid() -> int | None:
    """The dev server the run started: our child running the temporal binary."""
    binary = os.path.realpath(str(temporal_binary()))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == os.getpid() and os.path.realpath(entry / "exe") == binary:
                return int(entry.name)
        except OSError:
            continue
    return None


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def idle_usage(pids: dict[str, int], seconds: float) -> dict[str, dict[str, float]]:
    """% of one core each process used over `seconds`, and its RSS at the end (MB)."""
    c0 = {k: cpu_seconds(p) for k, p in pids.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    return {
        k: {
            "cpu_percent": 100 * (cpu_seconds(p) - c0[k]) / wall,
            "rss_mb": rss_mb(p),
            "peak_rss_mb": peak_rss_mb(p),
        }
        for k, p in pids.items()
    }


async def watched_namespace(kube: KubeClient, tries: int = 3) -> tuple[str, Groups, int]:
    """A new `bench-*` namespace the watcher acts on, proven by one group (PROBE, kept for the history
    part) becoming Ready in it. A namespace created just after the watcher started has been seen never
    to be watched (kopf's namespace discovery); such a one is counted and replaced."""
    for missed in range(tries):
        ns = await new_namespace(kube, "bench-scale")
        groups = Groups(kube, ns)
        await groups.started()
        await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body(PROBE))
        try:
            await groups.until(functools.partial(groups.settled, PROBE, 1), 60)
            return ns, groups, missed
        except TimeoutError:
            print(f"  the watcher does not act on namespace {ns}: trying another", flush=True)
            await groups.close()
    raise RuntimeError(f"the watcher acted on none of {tries} new namespaces")


async def create_all(
    kube: KubeClient, groups: Groups, ns: str, names: list[str], rate: float, timeout: float
) -> float:
    """Create every group, `rate` a second (0: a burst, 16 calls in flight); seconds from the first
    create call until every group is Ready at its generation."""
    sem = asyncio.Semaphore(16)

    async def create(i: int, name: str) -> None:
        if rate:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        async with sem:
            await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body(name))

    t0 = time.monotonic()
    await asyncio.gather(*(create(i, n) for i, n in enumerate(names)))
    print(f"    {len(names)} create calls answered after {time.monotonic() - t0:.1f}s", flush=True)
    await groups.until(lambda: all(groups.settled(n, 1) for n in names), timeout, "create")
    return time.monotonic() - t0


async def scale_to(kube: KubeClient, ns: str, name: str, replicas: int) -> int:
    """Set ROLE's replicas (JSON patch on its index); the new generation."""
    obj = await kube.get(f"{RBG_API}/namespaces/{ns}/rolebasedgroups/{name}")
    index = [r["name"] for r in obj["spec"]["roles"]].index(ROLE)
    patched = await kube.patch(
        f"{RBG_API}/namespaces/{ns}/rolebasedgroups/{name}",
        [{"op": "replace", "path": f"/spec/roles/{index}/replicas", "value": replicas}],
        "application/json-patch+json",
    )
    return int(patched["metadata"]["generation"])


async def operation_of(client: Client, ns: str, name: str, kind: str) -> str:
    """The id of the group's only operation of `kind` (visibility may lag its start a little)."""
    query = f'RbgNamespace="{ns}" AND RbgName="{name}" AND RbgOperation="{kind}"'
    for _ in range(50):
        ids = [w.id async for w in client.list_workflows(query)]
        if ids:
            assert len(ids) == 1, ids
            return ids[0]
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no {kind} operation listed for {ns}/{name}")


def event_seconds(event: Any) -> float:
    return float(event.event_time.seconds + event.event_time.nanos / 1e9)


async def first_activity(client: Client, workflow_id: str) -> tuple[float, float]:
    """Server times of the operation's start and of its first activity (scheduled, or LA marker)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = event_seconds(history.events[0])
    for e in history.events:
        if e.event_type in FIRST_ACTIVITY:
            return started, event_seconds(e)
    raise RuntimeError(f"{workflow_id}: no activity in its history")


async def change_to_activity(
    kube: KubeClient, client: Client, groups: Groups, ns: str, names: list[str], rate: float
) -> dict[str, Any]:
    patched: dict[str, tuple[float, int]] = {}
    for name in names:
        # Wall clock: compared with the server's event times (same machine).
        t = time.time()
        patched[name] = (t, await scale_to(kube, ns, name, 2))
        await asyncio.sleep(random.uniform(0.5, 1.5) / rate)
    await groups.until(
        lambda: all(groups.settled(n, g) for n, (_, g) in patched.items()), 300, "spec changes"
    )
    to_start, to_activity = [], []
    for name, (t, _) in patched.items():
        started, activity = await first_activity(client, await operation_of(client, ns, name, "Scale"))
        to_start.append(started - t)
        to_activity.append(activity - t)
    return {"to_operation_start": summary(to_start), "to_first_activity": summary(to_activity)}


async def history_bounds(
    kube: KubeClient, client: Client, groups: Groups, ns: str, name: str, ops: int
) -> dict[str, Any]:
    durations = []
    for i in range(ops):
        t0 = time.monotonic()
        generation = await scale_to(kube, ns, name, 2 if i % 2 == 0 else 1)
        await groups.until(functools.partial(groups.settled, name, generation), 120)
        durations.append(time.monotonic() - t0)
        if (i + 1) % 100 == 0:
            print(f"    {i + 1}/{ops} operations", flush=True)
    entity_id = RbgKey(cluster=await cluster_id_of(kube), namespace=ns, name=name).workflow_id
    runs = [w.run_id async for w in client.list_workflows(f'WorkflowId="{entity_id}"')]
    lengths = {}
    for run_id in runs:
        lengths[run_id] = (
            await client.get_workflow_handle(entity_id, run_id=run_id).describe()
        ).history_length
    handle = client.get_workflow_handle(entity_id)
    current = (await handle.describe()).history_length
    state = await handle.query(RoleBasedGroupWorkflow.get_state)
    listed = await client.count_workflows(
        f'RbgNamespace="{ns}" AND RbgName="{name}" AND RbgOperation="Scale"'
    )
    return {
        "operations_requested": ops,
        "entity_operations": state.operations,  # the deploy that created it, then one per change
        "scale_workflows": listed.count,
        "runs": len(runs),
        "current_run_history": current,
        "max_run_history": max(lengths.values()),
        "operation_seconds": summary(durations),
    }


async def delete_all(kube: KubeClient, client: Client, ns: str, timeout: float) -> dict[str, float]:
    """Seconds from the delete call until each collection (and the namespace's open workflows) is empty;
    "all" is the last of them."""
    t0 = time.monotonic()
    # The API server deletes a collection in one synchronous call: 1,000 groups outlast a client timeout,
    # and can outlast the server's own 60 s request timeout (504): then it is asked again for what is left.
    while True:
        try:
            await kube.request("DELETE", f"{RBG_API}/namespaces/{ns}/rolebasedgroups", timeout=600)
            break
        except ApiError as e:
            if e.status != 504 or time.monotonic() - t0 > timeout:
                raise
            print("    delete: the API server timed out deleting the collection; asking again", flush=True)
    paths = {
        "rolebasedgroups": f"{RBG_API}/namespaces/{ns}/rolebasedgroups",
        "statefulsets": f"/apis/apps/v1/namespaces/{ns}/statefulsets",
        "deployments": f"/apis/apps/v1/namespaces/{ns}/deployments",
        "pods": f"/api/v1/namespaces/{ns}/pods",
    }
    emptied: dict[str, float] = {}
    last_print = t0
    while True:
        for key, path in paths.items():
            if key not in emptied and not (await kube.get(path, limit=1))["items"]:
                emptied[key] = time.monotonic() - t0
        if "workflows" not in emptied:
            query = f'RbgNamespace="{ns}" AND ExecutionStatus="Running"'
            if not (await client.count_workflows(query)).count:
                emptied["workflows"] = time.monotonic() - t0
        if len(emptied) == len(paths) + 1:
            return {**emptied, "all": max(emptied.values())}
        left = [k for k in (*paths, "workflows") if k not in emptied]
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"delete: after {timeout:.0f}s {left} not empty")
        if time.monotonic() - last_print >= 15:
            last_print = time.monotonic()
            print(f"    delete: {left} not empty", flush=True)
        await asyncio.sleep(0.25)


def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(r: dict[str, Any]) -> None:
    idle, hist = r["idle"], r["history"]
    start, change = r["spec_change"]["to_operation_start"], r["spec_change"]["to_first_activity"]
    n = r["groups"]
    pace = f"{r['create_rate']:g}/s" if r["create_rate"] else "burst"
    rows = [
        (
            f"create {n} groups ({pace}) -> all Ready",
            f"{r['create_seconds']:.1f} s",
            "",
            "",
        ),
        (f"delete {n} groups -> all gone", f"{r['delete_seconds']['all']:.1f} s", "", ""),
        (
            "  groups / StatefulSets / Deployments / pods / workflows gone",
            " / ".join(
                f"{r['delete_seconds'][k]:.1f}"
                for k in ("rolebasedgroups", "statefulsets", "deployments", "pods", "workflows")
            )
            + " s",
            "",
            "",
        ),
    ]
    for proc in ("worker", "watcher"):
        cpu, rss, peak = (idle[proc][k] for k in ("cpu_percent", "rss_mb", "peak_rss_mb"))
        rows.append((f"{proc} idle CPU", f"{cpu:.2f} % of a core", "< 5 %", mark(cpu < 5)))
        rows.append((f"{proc} RSS (peak)", f"{rss:.0f} MB ({peak:.0f})", "< 300 MB", mark(rss < 300)))
    if "temporal" in idle:
        t = idle["temporal"]
        rows.append(("Temporal server idle CPU", f"{t['cpu_percent']:.2f} % ({t['rss_mb']:.0f} MB)", "", ""))
    rows += [
        ("spec change -> operation start p50/p99", f"{start['median']:.3f} / {start['p99']:.3f} s", "", ""),
        (
            f"spec change -> first activity p50/p99 (n={change['n']})",
            f"{change['median']:.3f} / {change['p99']:.3f} s",
            "p99 <= 1 s",
            mark(change["p99"] <= 1),
        ),
        (
            f"{hist['operations_requested']} operations on one group: entity runs",
            f"{hist['runs']} (history now {hist['current_run_history']}, max {hist['max_run_history']})",
            f"<= {HISTORY_BOUND:,} events",
            mark(hist["max_run_history"] <= HISTORY_BOUND),
        ),
        (
            "  operations (entity count / Scale workflows)",
            f"{hist['entity_operations']} / {hist['scale_workflows']}",
            "none lost",
            mark(hist["scale_workflows"] == hist["operations_requested"]),
        ),
    ]
    if r["namespaces_the_watcher_missed"]:
        rows.append(
            (
                "new namespaces the watcher never acted on",
                str(r["namespaces_the_watcher_missed"]),
                "0",
                "MISS",
            )
        )
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  " + "  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip())


async def main_async(args: argparse.Namespace, base: Path, runtime: Runtime) -> dict[str, Any]:
    n = args.groups
    # 110 pods a node (the sim's default); a tenth spare for the scaled roles.
    nodes = math.ceil(3 * n * 1.1 / 110) + 1
    sim_args = ("--no-lws", f"--nodes={nodes}", f"--ready-delay={args.ready_delay}")
    random.seed(args.seed)
    async with orchestrated_processes(base, runtime, *sim_args) as (kube, env, orch):
        assert orch.worker and orch.worker.proc and orch.watcher and orch.watcher.proc
        pids = {"worker": orch.worker.proc.pid, "watcher": orch.watcher.proc.pid}
        tpid = temporal_pid()
        if tpid:
            pids["temporal"] = tpid
        client: Client = env.client
        ns, groups, missed = await watched_namespace(kube)
        names = [f"g{i:04d}" for i in range(n)]
        result: dict[str, Any] = {
            "groups": n,
            "create_rate": args.create_rate,
            "nodes": nodes,
            "ready_delay": args.ready_delay,
            "namespaces_the_watcher_missed": missed,
        }
        print(f"creating {n} groups (3 roles x 1 replica) on {nodes} nodes", flush=True)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        result["create_seconds"] = await create_all(kube, groups, ns, names, args.create_rate, args.timeout)
        result["create_cpu_seconds"] = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        print(f"  all Ready after {result['create_seconds']:.1f}s; settling {args.settle}s", flush=True)
        await asyncio.sleep(args.settle)
        result["idle"] = await idle_usage(pids, args.idle)
        result["idle_seconds"] = args.idle
        print(
            "  idle: "
            + ", ".join(
                f"{k} {v['cpu_percent']:.2f}% {v['rss_mb']:.0f} MB" for k, v in result["idle"].items()
            ),
            flush=True,
        )
        sample = random.sample(names, min(args.sample, n))
        print(f"  scaling {ROLE} on {len(sample)} random groups at ~{args.rate}/s", flush=True)
        result["spec_change"] = await change_to_activity(kube, client, groups, ns, sample, args.rate)
        print(f"  spec change: {result['spec_change']}", flush=True)
        print(f"  {args.ops} operations on {PROBE}", flush=True)
        result["history"] = await history_bounds(kube, client, groups, ns, PROBE, args.ops)
        print(f"  history: {result['history']}", flush=True)
        result["after_ops"] = await idle_usage(pids, min(10.0, args.idle))
        print(f"  deleting {n} groups", flush=True)
        result["delete_seconds"] = await delete_all(kube, client, ns, args.timeout)
        await groups.close()
        table(result)
        return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100 groups, 100 operations, shorter windows")
    ap.add_argument("--groups", type=int)
    ap.add_argument("--ops", type=int, help="operations on the one group (history bound)")
    ap.add_argument("--sample", type=int, help="groups whose spec change is timed")
    # A burst of 1,000 (0) never converged on the 2-core machine: activity heartbeat and workflow task
    # timeouts, retried, with no deploy finishing for 10 minutes (README, Scale).
    ap.add_argument("--create-rate", type=float, default=3.0, help="groups created per second; 0: a burst")
    ap.add_argument("--rate", type=float, default=2.0, help="spec changes per second (timed sample)")
    ap.add_argument("--idle", type=float, help="idle measurement window, seconds")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after all Ready before idle")
    ap.add_argument("--ready-delay", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    quick = args.quick
    args.groups = args.groups or (100 if quick else 1000)
    args.ops = args.ops or (100 if quick else 1000)
    args.sample = args.sample or (30 if quick else 100)
    args.idle = args.idle or (20.0 if quick else 60.0)
    run_bench("scale", main_async, args)


if __name__ == "__main__":
    main()
