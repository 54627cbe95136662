"""What reading a group in the version it is not stored in costs, and why the orchestrator does not.

v1alpha2 is the storage version; a v1alpha1 read makes the API server call the conversion webhook. On the
sim (its webhook a local process, as `sim serve` runs it), N groups of the PD example are created as
v1alpha2, then, alternating rounds so both see the same machine:

- GET of every group as v1alpha2 (the baseline: no conversion) and as v1alpha1 (through the webhook);
- LIST of all N as v1alpha2 and as v1alpha1;
- the orchestrator's own cost instead: `api.internal_form` of each stored object, in-process.

    .venv/bin/python bench/conversion.py [--groups 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from temporalio.runtime import Runtime

from bench._common import run_bench, summary
from rbg_flows.api.conversion import internal_form
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.crds import install_crds
from rbg_flows.sim.launch import launch_sim, launched_webhook

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "v1alpha2" / "pd-disaggregation.yaml"
VERSIONS = ("v1alpha2", "v1alpha1")


def groups_path(version: str, ns: str) -> str:
    return f"/apis/workloads.x-k8s.io/{version}/namespaces/{ns}/rolebasedgroups"


async def timed(call: Any) -> float:
    start = time.perf_counter()
    await call
    return time.perf_counter() - start


async def measure(args: argparse.Namespace, base: Path, runtime: Runtime) -> dict[str, Any]:
    proc, kubeconfig = launch_sim(base / "sim", log_level="warning")
    try:
        async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
            await install_crds(kube, conversion_client_config=launched_webhook(base / "sim"))
            ns = f"bench-conv-{uuid.uuid4().hex[:6]}"
            await kube.create(
                "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
            template = yaml.safe_load(EXAMPLE.read_text())
            names = [f"g{i}" for i in range(args.groups)]
            for name in names:
                body = copy.deepcopy(template)
                body["metadata"] = {"name": name, "namespace": ns}
                await kube.create(groups_path("v1alpha2", ns), body)
            gets: dict[str, list[float]] = {v: [] for v in VERSIONS}
            lists: dict[str, list[float]] = {v: [] for v in VERSIONS}
            for _ in range(args.rounds):
                for version in VERSIONS:
                    for name in names:
                        gets[version].append(await timed(kube.get(f"{groups_path(version, ns)}/{name}")))
                    lists[version].append(await timed(kube.get(groups_path(version, ns))))
            stored = (await kube.get(groups_path("v1alpha2", ns)))["items"]
            start = time.perf_counter()
            for _ in range(args.rounds):
                for obj in stored:
                    internal_form(obj)
            in_process = (time.perf_counter() - start) / (args.rounds * len(stored))
    finally:
        proc.stop()
    get = {v: summary([s * 1000 for s in gets[v]]) for v in VERSIONS}
    lst = {v: summary([s * 1000 for s in lists[v]]) for v in VERSIONS}
    result = {
        "groups": args.groups,
        "rounds": args.rounds,
        "get_ms": get,
        "list_ms": lst,
        "in_process_conversion_ms": in_process * 1000,
        "get_median_ratio": get["v1alpha1"]["median"] / get["v1alpha2"]["median"],
        "list_median_ratio": lst["v1alpha1"]["median"] / lst["v1alpha2"]["median"],
    }
    print(f"{args.groups} groups stored as v1alpha2, {args.rounds} rounds")
    for version in VERSIONS:
        how = "stored version, no webhook" if version == "v1alpha2" else "through the conversion webhook"
        g, lm = get[version], lst[version]["median"]
        print(f"  GET  {version} ({how}): median {g['median']:.2f} ms, p99 {g['p99']:.2f} ms")
        print(f"  LIST {version} of {args.groups}: median {lm:.1f} ms")
    ratios = f"GET median {result['get_median_ratio']:.2f}, LIST median {result['list_median_ratio']:.2f}"
    print(f"  ratio v1alpha1/v1alpha2: {ratios}")
    print(
        f"  in-process internal_form per group (the orchestrator's cost instead): {in_process * 1000:.3f} ms"
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    run_bench("conversion", lambda a, base, runtime: measure(a, base, runtime), args)


if __name__ == "__main__":
    main()
