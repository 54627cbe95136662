"""Failover and coordinated scaling on the sim (issue: scale, failover; targets in ../shared/targets.md):

1. Failover: a group whose decode role says RecreateRBGOnPodRestart (prefill P / decode D pods, Ready
   `--ready-delay` s after they start); a decode pod is deleted; time until every pod of the group is a
   new pod and Ready and the group says Ready again, against the floor: the same pods deleted directly
   (no orchestrator acting on that namespace) until every one is new and Ready.
2. Coordinated scale 0 → (30, 10) under one scaling rule (maxSkew 10%, OrderReady): time from the spec
   change to Ready at the new generation, against its minimum: the fewest steps the rule allows
   (`rollout.scaling.plan_counts`, which is the planner's optimum) times the ready delay; and against one
   uncoordinated step (the same sizes applied at once).

    .venv/bin/python bench/failover.py [--runs 3] [--ready-delay 1.0] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.runtime import Runtime

from bench._common import orchestrated, run_bench, summary
from bench.deploy import RBG_API, new_namespace
from bench.upgrade import Watch
from rbg_flows.api import RoleBasedGroup
from rbg_flows.kube.client import JSON_PATCH, KubeClient
from rbg_flows.kube.wait import is_ready
from rbg_flows.messages import ScalingRule
from rbg_flows.rollout.scaling import plan_counts

ROOT = Path(__file__).resolve().parents[1]


def example(name: str, group: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    body["metadata"] = {"name": group}
    return body


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def all_new_and_ready(watch: Watch, before: set[str], count: int) -> bool:
    live = [p for p in watch.pods.values() if not p["metadata"].get("deletionTimestamp")]
    return len(live) == count and all(p["metadata"]["uid"] not in before and is_ready(p) for p in live)


async def failover_run(kube: KubeClient, args: argparse.Namespace) -> tuple[float, float]:
    """(failover seconds, direct recreation seconds) for one pod failure."""
    body = example("failover.yaml", "fo")
    body["spec"]["roles"][0]["replicas"] = args.prefill
    body["spec"]["roles"][1]["replicas"] = args.decode
    return await one_failover(kube, body, True), await one_failover(kube, body, False)


async def one_failover(kube: KubeClient, body: dict[str, Any], orchestrated_ns: bool) -> float:
    count = sum(int(r["replicas"]) for r in body["spec"]["roles"])
    ns = await new_namespace(kube, "bench-fo" if orchestrated_ns else "floor-fo")  # floor-*: nobody acts
    watch = Watch(kube, ns)
    await watch.start()
    try:
        if orchestrated_ns:
            await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)
            await watch.until(lambda: watch.settled(1))
        else:
            await direct_group(kube, ns, body)
            await watch.until(lambda: sum(is_ready(p) for p in watch.pods.values()) == count)
        before = {p["metadata"]["uid"] for p in watch.pods.values()}
        t0 = time.monotonic()
        if orchestrated_ns:
            await kube.delete(f"/api/v1/namespaces/{ns}/pods/fo-decode-0")
            await watch.until(
                lambda: (
                    all_new_and_ready(watch, before, count)
                    and condition(watch.rbg, "RestartInProgress").get("status") == "False"
                    and condition(watch.rbg, "Ready").get("status") == "True"
                )
            )
        else:
            for name in sorted(p["metadata"]["name"] for p in watch.pods.values()):
                await kube.delete(f"/api/v1/namespaces/{ns}/pods/{name}")
            await watch.until(lambda: all_new_and_ready(watch, before, count))
        return time.monotonic() - t0
    finally:
        watch.stop()
        await kube.delete(f"/api/v1/namespaces/{ns}")


async def direct_group(kube: KubeClient, ns: str, body: dict[str, Any]) -> None:
    """The group's StatefulSets as the orchestrator builds them, applied directly (the floor's cluster)."""
    from rbg_flows.kube.client import FIELD_MANAGER
    from rbg_flows.manifests.workloads import build_workload

    owner = await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)  # for ownerReferences
    rbg = RoleBasedGroup.model_validate(owner)
    for role in rbg.spec.roles:
        w = build_workload(rbg, role)
        await kube.apply(
            f"/apis/apps/v1/namespaces/{ns}/statefulsets/{w['metadata']['name']}", w, FIELD_MANAGER
        )


async def scale_run(kube: KubeClient, args: argparse.Namespace, coordinated: bool) -> float:
    """Seconds from the spec change 0 → (prefill, decode) to Ready at the new generation."""
    body = example("coordinated-scaling.yaml", "sc")
    for role in body["spec"]["roles"][:2]:
        role["replicas"] = 0
    rule = body["spec"]["coordination"][0]["strategy"]["scaling"]
    rule["maxSkew"] = args.scale_skew
    if not coordinated:
        body["spec"]["coordination"] = []
    ns = await new_namespace(kube, "bench-sc")
    watch = Watch(kube, ns)
    await watch.start()
    try:
        await kube.create(f"{RBG_API}/namespaces/{ns}/rolebasedgroups", body)
        await watch.until(lambda: watch.settled(1))
        t0 = time.monotonic()
        patched = await kube.patch(
            f"{RBG_API}/namespaces/{ns}/rolebasedgroups/sc",
            [
                {"op": "replace", "path": "/spec/roles/0/replicas", "value": args.scale_prefill},
                {"op": "replace", "path": "/spec/roles/1/replicas", "value": args.scale_decode},
            ],
            content_type=JSON_PATCH,
        )
        gen = patched["metadata"]["generation"]
        await watch.until(lambda: watch.settled(gen))
        return time.monotonic() - t0
    finally:
        watch.stop()
        await kube.delete(f"/api/v1/namespaces/{ns}")


def scale_steps(args: argparse.Namespace) -> int:
    rule = ScalingRule(
        name="r", roles=("prefill", "decode"), max_skew=args.scale_skew, progression="OrderReady"
    )
    steps = plan_counts(
        {"prefill": 0, "decode": 0}, {"prefill": args.scale_prefill, "decode": args.scale_decode}, [rule]
    )
    return len(steps)


async def main_async(args: argparse.Namespace, base: Path, runtime: Runtime) -> dict[str, Any]:
    sim_args = ("--no-lws", "--nodes=16", f"--ready-delay={args.ready_delay}")
    async with orchestrated(base, runtime, *sim_args) as (kube, _env):
        failovers: list[float] = []
        directs: list[float] = []
        for i in range(args.runs):
            took, floor_took = await failover_run(kube, args)
            failovers.append(took)
            directs.append(floor_took)
            print(f"  failover run {i + 1}: {took:.2f}s, direct recreation {floor_took:.2f}s", flush=True)
        steps = scale_steps(args)
        coordinated: list[float] = []
        at_once: list[float] = []
        for i in range(args.runs):
            coordinated.append(await scale_run(kube, args, True))
            at_once.append(await scale_run(kube, args, False))
            print(
                f"  scale run {i + 1}: coordinated {coordinated[-1]:.2f}s ({steps} steps), "
                f"at once {at_once[-1]:.2f}s",
                flush=True,
            )
    fo, direct = summary(failovers), summary(directs)
    co, once = summary(coordinated), summary(at_once)
    floor = steps * args.ready_delay
    result = {
        "ready_delay": args.ready_delay,
        "failover": fo,
        "failover_direct": direct,
        "failover_ratio_to_direct": fo["median"] / direct["median"],
        "scale_steps": steps,
        "scale_floor_seconds": floor,
        "scale_coordinated": co,
        "scale_ratio_to_floor": co["median"] / floor,
        "scale_at_once": once,
    }
    ratio = fo["median"] / direct["median"]
    print(
        f"failover (prefill {args.prefill} / decode {args.decode}, pods Ready {args.ready_delay}s after "
        f"start): pod failure -> group Ready again p50 {fo['median']:.2f}s (max {fo['max']:.2f}s); floor "
        f"(the same pods deleted directly) p50 {direct['median']:.2f}s; ratio {ratio:.2f}x"
    )
    print(
        f"coordinated scale 0 -> ({args.scale_prefill}, {args.scale_decode}), maxSkew {args.scale_skew}, "
        f"OrderReady: p50 {co['median']:.2f}s over {steps} steps; minimum {steps} x {args.ready_delay}s = "
        f"{floor:.2f}s; ratio {co['median'] / floor:.2f}x; uncoordinated one step p50 {once['median']:.2f}s"
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ready-delay", type=float, default=1.0)
    ap.add_argument("--prefill", type=int, default=4)
    ap.add_argument("--decode", type=int, default=2)
    ap.add_argument("--scale-prefill", type=int, default=30)
    ap.add_argument("--scale-decode", type=int, default=10)
    ap.add_argument("--scale-skew", default="10%")
    ap.add_argument("--quick", action="store_true", help="one run of each")
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    run_bench("failover", main_async, args)


if __name__ == "__main__":
    main()
