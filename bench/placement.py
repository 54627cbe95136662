"""How good and how fast the placement choice is (pure: no cluster needed).

1. Optimality: seeded small instances (<= 12 nodes, 1-3 components, Required and Preferred, exclusive or
   not); the share whose chosen score equals the exhaustive optimum.
2. Decision time for one group on a generated cluster of 5,000 nodes / 40,000 GPUs with existing load
   (the sim's `generated_topology`), p50/p99 over many decisions; building the model from a snapshot is
   timed apart.
3. Quality over a stream of groups arriving on that cluster, each method on its own copy: the score of
   what each group obtained (pairs x the worst tier between its communicating pods) against what it
   asked, and the share placed at the best tier, for this search and two baselines run on the same
   stream: first-fit in node order, and the exclusive-topology rule alone (one RDMA block per group,
   first-fit inside it).

    .venv/bin/python bench/placement.py [--quick] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import summary, write_result
from rbg_flows.placement.demand import Component
from rbg_flows.placement.oracle import optimum
from rbg_flows.placement.solve import solve
from rbg_flows.placement.tiers import Tier
from rbg_flows.placement.topology import Cluster, GpuNode, cluster_from_snapshot, tier_between
from rbg_flows.sim.topology import CLIQUE, GPU, INTERCONNECT, RDMA_BLOCK, ZONE, generated_topology

Placer = Callable[[Cluster, list[Component]], list[list[int]] | None]


def small_instance(rng: random.Random) -> tuple[Cluster, list[Component], Tier, bool, bool]:
    nodes = []
    for i in range(rng.randint(1, 12)):
        nodes.append(
            GpuNode(
                f"n{i:02d}",
                rng.choice([0, 2, 4, 4, 8, 8]),
                rng.random() < 0.5,
                rng.choice([None, "c0", "c1"]),
                rng.choice(["b0", "b1", "b2"]),
                rng.choice(["z0", "z1"]),
                frozenset(["other"]) if rng.random() < 0.15 else frozenset(),
            )
        )
    comps = [
        Component(
            f"c{k}",
            (f"c{k}",),
            tuple(sorted((rng.choice([1, 2, 4, 8]) for _ in range(rng.randint(1, 4))), reverse=True)),
            rng.randint(1, 6),
        )
        for k in range(rng.randint(1, 3))
    ]
    return (
        Cluster(nodes),
        comps,
        rng.choice([Tier.NVLINK, Tier.PCIE, Tier.RDMA, Tier.ZONE]),
        rng.random() < 0.5,
        rng.random() < 0.3,
    )


def optimality(n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    equal = complete = infeasible = 0
    for _ in range(n):
        cluster, comps, level, required, exclusive = small_instance(rng)
        got = solve(cluster, comps, level=level, required=required, exclusive=exclusive)
        best = optimum(cluster, comps, level=level, required=required, exclusive=exclusive)
        complete += got.complete
        if best is None:
            infeasible += 1
            equal += got.error is not None
        else:
            equal += got.error is None and got.score == best
    return {
        "instances": n,
        "optimal": equal,
        "share": equal / n,
        "infeasible": infeasible,
        "complete": complete,
    }


def large_snapshot(
    nodes: int, load: float, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    objs, pods = [], []
    for name, group in generated_topology(nodes).expand():
        labels = {k: v for k, v in group.labels.items() if k in (CLIQUE, INTERCONNECT, RDMA_BLOCK, ZONE)}
        gpus = int(group.capacity[GPU])
        objs.append(
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {},
                "status": {
                    "allocatable": {GPU: str(gpus)},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        used = sum(1 for _ in range(gpus) if rng.random() < load)
        if used:
            res = {"resources": {"requests": {GPU: str(used)}}}
            pods.append(
                {
                    "metadata": {},
                    "spec": {"nodeName": name, "containers": [res]},
                    "status": {"phase": "Running"},
                }
            )
    return objs, pods


def pd_group(rng: random.Random) -> list[Component]:
    """A PD group: prefill and decode pods of 1-8 GPUs (an instance of 2-6 pods in all)."""
    prefill = [rng.choice([1, 2, 4])] * rng.randint(1, 3)
    decode = [rng.choice([2, 4, 8])] * rng.randint(1, 3)
    pods = tuple(sorted(prefill + decode, reverse=True))
    return [Component("decode+prefill", ("decode", "prefill"), pods, len(prefill) * len(decode))]


def decision_times(cluster: Cluster, runs: int, rng: random.Random) -> dict[str, float]:
    times = []
    for _ in range(runs):
        comps = pd_group(rng)
        start = time.perf_counter()
        solve(cluster, comps, level=rng.choice([Tier.NVLINK, Tier.RDMA]), required=False)
        times.append((time.perf_counter() - start) * 1000)
    return {k: round(v, 2) for k, v in summary(times).items()}


# -- the stream: every method places the same groups on its own copy of the cluster ---------------


def _first_fit(
    cluster: Cluster, free: list[int], pods: tuple[int, ...], allowed: list[int]
) -> list[int] | None:
    out = []
    for need in pods:
        node = next((i for i in allowed if free[i] >= need), None)
        if node is None:
            return None
        free[node] -= need
        out.append(node)
    return out


def place_search(cluster: Cluster, free: list[int], comps: list[Component]) -> list[int] | None:
    view = Cluster(
        [
            GpuNode(n.name, f, n.nvlink, n.clique, n.block, n.zone)
            for n, f in zip(cluster.nodes, free, strict=True)
        ],
        cluster.keys,
    )
    got = solve(view, comps, level=Tier.NVLINK, required=False)
    (choice,) = got.choices
    allowed = list(choice.domain.nodes) if choice.domain else list(range(len(free)))
    # Inside the domain the scheduler picks nodes; best-fit stands in for it here.
    out = []
    for need in comps[0].pods:
        node = min((i for i in allowed if free[i] >= need), key=lambda i: (free[i], i), default=None)
        if node is None:
            return None
        free[node] -= need
        out.append(node)
    return out


def place_first_fit(cluster: Cluster, free: list[int], comps: list[Component]) -> list[int] | None:
    return _first_fit(cluster, free, comps[0].pods, list(range(len(free))))


def place_exclusive_rule(cluster: Cluster, free: list[int], comps: list[Component]) -> list[int] | None:
    blocks: dict[str | None, list[int]] = {}
    for i, n in enumerate(cluster.nodes):
        blocks.setdefault(n.block, []).append(i)
    for nodes in blocks.values():
        trial = list(free)
        got = _first_fit(cluster, trial, comps[0].pods, nodes)
        if got is not None:
            free[:] = trial
            return got
    return None


def stream(cluster: Cluster, groups: list[list[Component]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, place in (
        ("search", place_search),
        ("first_fit", place_first_fit),
        ("exclusive_rule", place_exclusive_rule),
    ):
        free = [n.free for n in cluster.nodes]
        score = asked = best_tier = placed = 0
        for comps in groups:
            comp = comps[0]
            asked += comp.pairs * Tier.NVLINK
            nodes = place(cluster, free, comps)
            if nodes is None:
                continue
            placed += 1
            tier = min(
                (
                    tier_between(cluster.nodes[a], cluster.nodes[b])
                    for i, a in enumerate(nodes)
                    for b in nodes[i + 1 :]
                ),
                default=Tier.NVLINK,
            )
            score += comp.pairs * tier
            best_tier += tier == Tier.NVLINK
        out[name] = {
            "score_share": round(score / asked, 4),
            "best_tier_share": round(best_tier / len(groups), 4),
            "placed": placed,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--nodes", type=int, default=5000)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    small = optimality(500 if args.quick else 2000, args.seed)
    print(
        f"small instances: {small['optimal']}/{small['instances']} optimal ({small['share']:.1%}), "
        f"{small['infeasible']} infeasible, search complete on {small['complete']}"
    )
    objs, pods = large_snapshot(args.nodes, 0.35, rng)
    start = time.perf_counter()
    cluster = cluster_from_snapshot(objs, pods)
    snapshot_ms = (time.perf_counter() - start) * 1000
    gpus = sum(int(o["status"]["allocatable"][GPU]) for o in objs)
    times = decision_times(cluster, 50 if args.quick else 300, rng)
    print(
        f"{len(objs)} nodes / {gpus} GPUs ({cluster.free} free): decision p50 {times['median']} ms, "
        f"p99 {times['p99']} ms (targets 50 / 200); model from snapshot {snapshot_ms:.0f} ms"
    )
    groups = [pd_group(rng) for _ in range(300 if args.quick else 2000)]
    quality = stream(cluster, groups)
    base = quality["search"]["score_share"]
    for name, q in quality.items():
        ratio = base / q["score_share"] if q["score_share"] else float("inf")
        print(
            f"  {name:15s} score {q['score_share']:.1%} of asked, best tier {q['best_tier_share']:.1%}, "
            f"placed {q['placed']}/{len(groups)}; search/this {ratio:.2f}x"
        )
    result = {
        "seed": args.seed,
        "quick": args.quick,
        "optimality": small,
        "cluster": {
            "nodes": len(objs),
            "gpus": gpus,
            "free": cluster.free,
            "snapshot_ms": round(snapshot_ms, 1),
        },
        "decision_ms": times,
        "stream": {"groups": len(groups), **quality},
    }
    print(f"written {write_result('placement', result)}")


if __name__ == "__main__":
    main()
