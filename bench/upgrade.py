"""Coordinated upgrade and rollback (targets in ../shared/targets.md, "Upgrades"):

1. Upgrade: prefill 8 / decode 8 in one lock-step rule (maxSkew 25%), pods Ready D seconds after they
   start; time from the spec change to Ready=True at the new generation with every pod on the new image,
   against the floor (the fewest steps the constraints allow, from the planner's closed-form bound) x D,
   and the worst skew seen in pod watch events.
2. Rollback mid-upgrade: a second upgrade is started and paused after its first steps; `rollback` to the
   revision before it is called (the entity's Update, as the CLI does); time from the call to every pod
   back on the old image, against the same floor for the reverse path.

    .venv/bin/python bench/upgrade.py [--runs 5] [--replicas 8] [--max-unavailable 2] [--ready-delay 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.runtime import Runtime

from bench._common import orchestrated, run_bench, summary
from bench.deploy import RBG_API, new_namespace
from rbg_flows.activities.rollout import STS, observed, pods_on_target
from rbg_flows.api import RoleBasedGroup, parse_rbg
from rbg_flows.cli.processes import cluster_id_of
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.kinds import PODS
from rbg_flows.kube.wait import is_ready
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.messages import RbgKey
from rbg_flows.rollout.observer import ROLE_LABEL, RolloutObserver, pod_images
from rbg_flows.rollout.planner import minimum_steps, plan_all, state_from_spec
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("lmsysorg/sglang:v0.5.4", "lmsysorg/sglang:v0.5.5", "lmsysorg/sglang:v0.5.6")
IMAGE_PATH = "/spec/roleTemplates/0/template/spec/containers/0/image"
NAME = "pd"


def group(replicas: int, max_unavailable: int) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "coordinated-upgrade.yaml").read_text())
    body["metadata"] = {"name": NAME}
    for role in body["spec"]["roles"]:
        if role["name"] in ("prefill", "decode"):
            role["replicas"] = replicas
            role["rolloutStrategy"] = {"rollingUpdate": {"maxUnavailable": max_unavailable}}
    return body


def floor_steps(body: dict[str, Any], updated: dict[str, int] | None = None) -> int:
    rbg, errors = parse_rbg(body)
    assert rbg is not None and not errors, errors
    return minimum_steps(state_from_spec(rbg.spec, updated or {}, roles=["prefill", "decode"]))


async def direct_steps(kube: KubeClient, args: argparse.Namespace) -> tuple[float, int]:
    """The baseline: the planner's steps applied straight to the two StatefulSets (partition, then wait
    for the moved pods to be Ready), no orchestrator involved. Same cluster, same run."""
    ns = await new_namespace(kube, "floor-up")  # no watcher acts on it
    body = group(args.replicas, args.max_unavailable)
    owner = await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)  # for ownerReferences
    rbg = RoleBasedGroup.model_validate(owner)
    roles = [rbg.spec.role(r) for r in ("prefill", "decode")]
    cache = WorkloadCache(kube)
    await cache.ensure(STS)
    await cache.ensure(PODS)

    async def apply(spec: RoleBasedGroup, partition: int) -> dict[str, int]:
        generations = {}
        for role in roles:
            w = build_workload(spec, spec.spec.role(role.name), partition=partition)
            applied = await kube.apply(STS.path(ns, w["metadata"]["name"]), w, FIELD_MANAGER)
            generations[w["metadata"]["name"]] = applied["metadata"]["generation"]
        return generations

    async def ready(generations: dict[str, int], want: int) -> None:
        for name, generation in generations.items():
            with cache.subscribe(STS, ns, name, PODS) as changed:
                while True:
                    sts = cache.get(STS, ns, name)
                    if sts is not None and observed(sts, generation):
                        _, n = pods_on_target(sts, cache.pods(ns, name), args.replicas)
                        if n >= want:
                            break
                    changed.clear()
                    await changed.wait()

    try:
        await ready(await apply(rbg, 0), args.replicas)
        new = copy.deepcopy(owner)
        new["spec"]["roleTemplates"][0]["template"]["spec"]["containers"][0]["image"] = IMAGES[1]
        target = RoleBasedGroup.model_validate(new)
        steps = plan_all(state_from_spec(target.spec, {}, roles=["prefill", "decode"]))
        t0 = time.monotonic()
        await ready(await apply(target, args.replicas), 0)  # hold, as the orchestrator does
        for step in steps:
            after = min(step.after.values())
            await ready(await apply(target, args.replicas - after), after)
        return time.monotonic() - t0, len(steps)
    finally:
        await cache.close()
        await kube.delete(f"/api/v1/namespaces/{ns}")


class Watch:
    """The group's pods and the group itself, watched as a user would."""

    def __init__(self, kube: KubeClient, ns: str):
        self.kube, self.ns = kube, ns
        self.observers: list[RolloutObserver] = []
        self.pods: dict[str, dict[str, Any]] = {}
        self.rbg: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        synced = [asyncio.Event(), asyncio.Event()]

        def on_pod(t: str, pod: dict[str, Any]) -> None:
            if t == "DELETED":
                self.pods.pop(pod["metadata"]["name"], None)
            else:
                self.pods[pod["metadata"]["name"]] = pod
            for o in self.observers:
                o.on_event(t, pod)
            self.changed.set()

        def on_rbg(t: str, obj: dict[str, Any]) -> None:
            self.rbg = obj
            self.changed.set()

        self.tasks = [
            asyncio.create_task(
                list_and_watch(
                    self.kube, f"/api/v1/namespaces/{self.ns}/pods", on_pod, on_synced=synced[0].set
                )
            ),
            asyncio.create_task(
                list_and_watch(
                    self.kube,
                    f"{RBG_API}/namespaces/{self.ns}/rolebasedgroups",
                    on_rbg,
                    on_synced=synced[1].set,
                )
            ),
        ]
        await asyncio.gather(*(s.wait() for s in synced))

    def observe(self, *observers: RolloutObserver) -> None:
        """From now on feed these observers, starting from the pods as they are."""
        for o in observers:
            for pod in self.pods.values():
                o.on_event("ADDED", pod)
        self.observers = list(observers)

    async def until(self, predicate: Any, timeout: float = 600) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    def settled(self, generation: int) -> bool:
        st = self.rbg.get("status") or {}
        return st.get("observedGeneration", 0) >= generation and any(
            c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []
        )

    def stop(self) -> None:
        for t in self.tasks:
            t.cancel()


def observer(image: str, replicas: int) -> RolloutObserver:
    return RolloutObserver(
        {"prefill": replicas, "decode": replicas},
        lambda p: image in pod_images(p),
        pairs=[("prefill", "decode")],
    )


async def one_run(kube: KubeClient, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    ns = await new_namespace(kube, "bench-up")
    body = group(args.replicas, args.max_unavailable)
    watch = Watch(kube, ns)
    await watch.start()
    total = 2 * args.replicas
    try:
        await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)
        await watch.until(lambda: watch.settled(1))

        # 1. The coordinated upgrade.
        up = observer(IMAGES[1], args.replicas)
        watch.observe(up)
        t0 = time.monotonic()
        patched = await kube.patch(
            f"{RBG_API}/namespaces/{ns}/rolebasedgroups/{NAME}",
            [{"op": "replace", "path": IMAGE_PATH, "value": IMAGES[1]}],
            content_type="application/json-patch+json",
        )
        gen = patched["metadata"]["generation"]
        # The first pod to go is the first step starting: what precedes it is the operation's start-up.
        await watch.until(
            lambda: (
                any(p["metadata"].get("deletionTimestamp") for p in watch.pods.values())
                or sum(up.counts().values()) > 0
            )
        )
        first_move = time.monotonic() - t0
        await watch.until(lambda: watch.settled(gen) and sum(up.counts().values()) == total)
        upgrade = time.monotonic() - t0

        # 2. Rollback issued mid-upgrade (held at a step), back to the revision just rolled out.
        forward = observer(IMAGES[2], args.replicas)
        back = observer(IMAGES[1], args.replicas)
        watch.observe(forward, back)
        patched = await kube.patch(
            f"{RBG_API}/namespaces/{ns}/rolebasedgroups/{NAME}",
            [{"op": "replace", "path": IMAGE_PATH, "value": IMAGES[2]}],
            content_type="application/json-patch+json",
        )

        def ready_on(image: str) -> dict[str, int]:
            counts = {role: 0 for role in ("prefill", "decode")}
            for p in watch.pods.values():
                role = p["metadata"]["labels"].get(ROLE_LABEL)
                if role in counts and image in pod_images(p) and is_ready(p):
                    counts[role] += 1
            return counts

        cluster = await cluster_id_of(kube)  # as the worker and watcher of the run derive it
        handle = client.get_workflow_handle(RbgKey(cluster=cluster, namespace=ns, name=NAME).workflow_id)
        # Once half the pods serve the new image, hold the rollout (pause) so the rollback starts from a step
        # boundary: every pod on the abandoned image is Ready, none in flight, and the reverse path's floor
        # is exact (pods caught mid-replacement would be replaced at once, outside the step count).
        await watch.until(lambda: sum(ready_on(IMAGES[2]).values()) >= total // 2)
        await handle.execute_update(RoleBasedGroupWorkflow.pause)
        await watch.until(lambda: (watch.rbg.get("status") or {}).get("phase") == "Paused")
        await watch.until(lambda: ready_on(IMAGES[2]) == forward.counts())
        state = await handle.query(RoleBasedGroupWorkflow.get_state)
        assert state.current_revision is not None
        moved = forward.counts()
        t1 = time.monotonic()
        await handle.execute_update(RoleBasedGroupWorkflow.rollback, state.current_revision.revision)
        answered = time.monotonic() - t1
        await watch.until(
            lambda: sum(ready_on(IMAGES[1]).values()) == total and sum(forward.counts().values()) == 0
        )
        rollback = time.monotonic() - t1
        # Pods on the image rolled back to count as done: the reverse path's own floor.
        back_floor = floor_steps(body, {r: args.replicas - n for r, n in moved.items()})
        return {
            "upgrade_seconds": upgrade,
            "upgrade_first_pod_moved_seconds": first_move,
            "upgrade_max_skew": float(up.max_skew),
            "upgrade_worst_counts": up.worst,
            "upgrade_replacements": max(up.replacements(n) for n in up.incarnations),
            "rollback_seconds": rollback,
            "rollback_answer_seconds": answered,
            "rollback_from": moved,
            "rollback_floor_steps": back_floor,
            "rollback_max_skew": float(back.max_skew),
        }
    finally:
        watch.stop()
        await kube.delete(f"/api/v1/namespaces/{ns}")


async def main_async(args: argparse.Namespace, base: Path, runtime: Runtime) -> dict[str, Any]:
    sim_args = ("--no-lws", "--nodes=16", f"--ready-delay={args.ready_delay}")
    async with orchestrated(base, runtime, *sim_args) as (kube, env):
        steps = floor_steps(group(args.replicas, args.max_unavailable))
        floor = steps * args.ready_delay
        runs = []
        for i in range(args.runs):
            direct_s, direct_steps_n = await direct_steps(kube, args)
            runs.append({**await one_run(kube, env.client, args), "direct_seconds": direct_s})
            r = runs[-1]
            print(
                f"  run {i + 1}: direct steps {direct_s:.2f}s ({direct_steps_n} steps), "
                f"upgrade {r['upgrade_seconds']:.2f}s (first pod moved after "
                f"{r['upgrade_first_pod_moved_seconds']:.2f}s, skew {r['upgrade_max_skew']:.3f}), "
                f"rollback {r['rollback_seconds']:.2f}s from {r['rollback_from']} "
                f"({r['rollback_floor_steps']} steps)",
                flush=True,
            )
        up = summary([r["upgrade_seconds"] for r in runs])
        direct = summary([r["direct_seconds"] for r in runs])
        back = summary([r["rollback_seconds"] for r in runs])
        back_ratio = [
            r["rollback_seconds"] / (max(1, r["rollback_floor_steps"]) * args.ready_delay) for r in runs
        ]
        # The cluster's own time per step (the direct baseline's), for the same number of reverse steps.
        per_step = direct["median"] / steps
        back_to_direct = [
            r["rollback_seconds"] / (max(1, r["rollback_floor_steps"]) * per_step) for r in runs
        ]
        result: dict[str, Any] = {
            "replicas": args.replicas,
            "max_unavailable": args.max_unavailable,
            "ready_delay": args.ready_delay,
            "floor_steps": steps,
            "floor_seconds": floor,
            "upgrade": up,
            "upgrade_ratio": up["median"] / floor,
            "direct": direct,
            "upgrade_ratio_to_direct": up["median"] / direct["median"],
            "worst_skew": max(r["upgrade_max_skew"] for r in runs),
            "max_replacements_per_pod": max(r["upgrade_replacements"] for r in runs),
            "rollback": back,
            "rollback_ratio_median": summary(back_ratio)["median"],
            "rollback_ratio_to_direct_median": summary(back_to_direct)["median"],
            "runs": runs,
        }
        print(
            f"coordinated upgrade prefill {args.replicas} / decode {args.replicas}, maxSkew 25%, "
            f"maxUnavailable {args.max_unavailable}, pods Ready {args.ready_delay}s after start:"
        )
        print(f"  floor: {steps} steps x {args.ready_delay}s = {floor:.2f}s")
        print(
            f"  baseline: the same steps applied directly to the StatefulSets: median "
            f"{direct['median']:.2f}s (the cluster's own cost of replacing pods, same run)"
        )
        print(
            f"  upgrade: median {up['median']:.2f}s, "
            f"ratio {result['upgrade_ratio']:.2f} (target <= 1.2), "
            f"{result['upgrade_ratio_to_direct']:.2f} to the direct baseline; "
            f"worst skew seen {result['worst_skew']:.3f} (limit 0.25); "
            f"replacements per pod <= {result['max_replacements_per_pod']}"
        )
        print(
            f"  rollback mid-upgrade: median {back['median']:.2f}s from the update call, "
            f"ratio to its floor {result['rollback_ratio_median']:.2f} (target <= 1.2), "
            f"{result['rollback_ratio_to_direct_median']:.2f} to the direct baseline's time per step"
        )
        return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--max-unavailable", type=int, default=2)
    ap.add_argument("--ready-delay", type=float, default=1.0)
    args = ap.parse_args()
    run_bench("upgrade", main_async, args)


if __name__ == "__main__":
    main()
