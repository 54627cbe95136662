"""`rbg-flows sim ...`: build, serve, nodes, topology and fault commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.sim.topology import Topology

DEFAULT_STATE = Path(".rbg/sim")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("sim", help="the local cluster: a real control plane with simulated GPU nodes")
    s = sim.add_subparsers(dest="sim_cmd", required=True)

    b = s.add_parser("build", help="build (or find in the cache) the control plane, etcd, kubectl and LWS")
    b.add_argument("--no-lws", action="store_true")
    b.set_defaults(func=_build)

    sv = s.add_parser("serve", help="run the sim in the foreground; writes --kubeconfig once ready")
    sv.add_argument("--kubeconfig", type=Path, required=True)
    sv.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    sv.add_argument("--topology", type=Path)
    sv.add_argument("--nodes", type=int, help="use a generated topology of this many 8-GPU nodes")
    sv.add_argument("--port", type=int, default=0, help="API server port (0: pick a free one)")
    sv.add_argument("--ready-delay", type=float, default=1.0, help="seconds from container start to Ready")
    sv.add_argument("--fault-proxy", action="store_true", help="put the API fault proxy in front")
    sv.add_argument("--no-lws", action="store_true", help="do not run the LeaderWorkerSet controller")
    sv.add_argument("--clean", action="store_true", help="forget the previous cluster state first")
    sv.add_argument(
        "--no-webhook",
        action="store_true",
        help="do not run the CRD conversion webhook (CRDs installed with conversion cannot then convert)",
    )
    sv.add_argument(
        "--toleration-seconds",
        type=int,
        default=10,
        help="how long pods stay on a NotReady/unreachable node before eviction",
    )
    sv.add_argument(
        "--audit-log",
        type=Path,
        help="the API server writes an audit log here (JSON lines, every request at Metadata level)",
    )
    sv.set_defaults(func=_serve)

    c = s.add_parser(
        "crds", help="install the CRDs (current KUBECONFIG), their conversion webhook the sim's local one"
    )
    c.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="the running sim's (its sim.json)")
    c.set_defaults(func=_crds)

    n = s.add_parser("nodes", help="run only the node simulator, against the current KUBECONFIG")
    n.add_argument("--topology", type=Path)
    n.add_argument("--nodes", type=int)
    n.add_argument("--ready-delay", type=float, default=1.0)
    n.set_defaults(func=_nodes)

    t = s.add_parser("topology", help="print the default (or a generated) topology file")
    t.add_argument("--nodes", type=int)
    t.set_defaults(func=_topology)

    k = s.add_parser("kubectl", help="the kubectl built with the sim (same release as the API server)")
    k.add_argument("args", nargs=argparse.REMAINDER)
    k.set_defaults(func=_kubectl)

    f = s.add_parser("fault", help="inject a pod or node fault (current KUBECONFIG)")
    f.add_argument("action", choices=["crash", "fail", "hold", "release", "notready", "ready", "delete"])
    f.add_argument("target", help="pod/NAME or node/NAME")
    f.add_argument("-n", "--namespace", default="default")
    f.set_defaults(func=_fault)


def _load_topology(args: argparse.Namespace) -> Topology:
    from rbg_flows.sim.topology import TopologyError, generated_topology, load_topology

    if args.nodes and args.topology:
        raise SystemExit("--nodes and --topology are exclusive")
    if args.nodes:
        return generated_topology(args.nodes)
    try:
        return load_topology(args.topology)
    except (TopologyError, OSError) as e:
        raise SystemExit(f"invalid topology: {e}") from e


def _build(args: argparse.Namespace) -> int:
    from rbg_flows.sim.build import BuildError, ensure_binaries

    try:
        bins = ensure_binaries(with_lws=not args.no_lws)
    except BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "binDir": str(bins.bin_dir),
                "lwsDir": str(bins.lws_dir) if bins.lws_dir else None,
                "kubernetesVersion": bins.kubernetes_version,
            }
        )
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from rbg_flows.sim.serve import ServeOptions, serve

    topology = _load_topology(args)
    opts = ServeOptions(
        kubeconfig=args.kubeconfig.absolute(),
        state_dir=args.state_dir.absolute(),
        topology=topology,
        port=args.port,
        ready_delay=args.ready_delay,
        fault_proxy=args.fault_proxy,
        lws=not args.no_lws,
        clean=args.clean,
        webhook=not args.no_webhook,
        toleration_seconds=args.toleration_seconds,
        audit_log=args.audit_log.absolute() if args.audit_log else None,
    )
    asyncio.run(serve(opts))
    return 0


def _crds(args: argparse.Namespace) -> int:
    from rbg_flows.kube.crds import install_crds
    from rbg_flows.sim.serve import info_path
    from rbg_flows.sim.webhook import published_client_config

    conversion = published_client_config(json.loads(info_path(args.state_dir.absolute()).read_text()))
    if conversion is None:
        print("this sim runs no conversion webhook (started with --no-webhook)", file=sys.stderr)
        return 1

    async def run() -> list[str]:
        async with await KubeClient.from_kubeconfig() as client:
            return await install_crds(client, conversion_client_config=conversion)

    print("\n".join(asyncio.run(run())))
    return 0


def _nodes(args: argparse.Namespace) -> int:
    from rbg_flows.sim.nodesim import NodeSimulator, NodeSimulatorConfig

    topology = _load_topology(args)

    async def run() -> None:
        async with await KubeClient.from_kubeconfig() as client:
            version = (await client.get("/version")).get("gitVersion", "")
            sim = NodeSimulator(
                client, topology, NodeSimulatorConfig(ready_delay=args.ready_delay, kubelet_version=version)
            )
            print(f"simulating {len(sim.nodes)} nodes", flush=True)
            await sim.run()

    asyncio.run(run())
    return 0


def _kubectl(args: argparse.Namespace) -> int:
    import os

    from rbg_flows.sim.build import ensure_binaries

    kubectl = str(ensure_binaries(with_lws=False).path("kubectl"))
    os.execv(kubectl, [kubectl, *[a for a in args.args if a != "--"]])
    return 0  # not reached


def _topology(args: argparse.Namespace) -> int:
    from rbg_flows.sim.topology import default_topology, dump_topology, generated_topology

    print(dump_topology(generated_topology(args.nodes) if args.nodes else default_topology()), end="")
    return 0


def _fault(args: argparse.Namespace) -> int:
    from rbg_flows.sim.faults import Faults

    kind, _, name = args.target.partition("/")
    pod_actions = {"crash", "fail", "hold", "release"}
    if kind not in ("pod", "node") or not name:
        print(f"target: expected pod/NAME or node/NAME, got {args.target!r}", file=sys.stderr)
        return 2
    if (kind == "pod") != (args.action in pod_actions):
        print(f"{args.action} does not apply to a {kind}", file=sys.stderr)
        return 2

    async def run() -> None:
        async with await KubeClient.from_kubeconfig() as client:
            f = Faults(client)
            ns = args.namespace
            actions: dict[str, Callable[[], Awaitable[object]]] = {
                "crash": lambda: f.crash_pod(ns, name),
                "fail": lambda: f.fail_pod(ns, name),
                "hold": lambda: f.hold_pod(ns, name),
                "release": lambda: f.release_pod(ns, name),
                "notready": lambda: f.node_not_ready(name),
                "ready": lambda: f.node_ready(name),
                "delete": lambda: f.delete_node(name),
            }
            await actions[args.action]()

    try:
        asyncio.run(run())
    except ApiError as e:
        print(f"{args.action} {args.target}: {e}", file=sys.stderr)
        return 1
    print(f"{args.action} {args.target}: done")
    return 0
