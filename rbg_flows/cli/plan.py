"""`rbg-flows plan -f FILE` (and `kubectl rbg plan -f FILE`): what applying a manifest would do, changing
nothing. For each RoleBasedGroup in the file: its problems (what the operation would refuse, by field),
else the operation (create, deploy, upgrade, scale) with an upgrade's steps, the pods each moves and the
skew after it, and where placement would put the roles now, with tier and score, or why it cannot.

Reads the group and, for placement, the nodes, pods and placement ledger; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from rbg_flows.activities.placement import PlacementActivities
from rbg_flows.api import RoleBasedGroupStatus, parse_rbg
from rbg_flows.api.common import GROUP
from rbg_flows.api.conversion import internal_form
from rbg_flows.api.rbg import KIND
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.kinds import GROUPS
from rbg_flows.rollout.preview import preview

JSON = dict[str, Any]
HELP = "what applying a manifest would do (operation, steps, placement), changing nothing"
# Where an installed worker keeps its placement ledger (deploy/base/namespace.yaml).
DEFAULT_WORKER_NAMESPACE = "rbg-flows-system"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str = "plan") -> None:
    p = sub.add_parser(
        name, help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-f", "--filename", required=True, help="manifest file ('-' reads standard input)")
    p.add_argument(
        "-n", "--namespace", default=None, help="default: the manifest's, else $RBG_NAMESPACE or default"
    )
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: ~/.kube/config")
    p.add_argument(
        "--worker-namespace",
        default=os.environ.get("RBG_WORKER_NAMESPACE", DEFAULT_WORKER_NAMESPACE),
        help="where the worker keeps its placement ledger (groups placed but not yet scheduled)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
    try:
        docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as e:
        print(f"{args.filename}: not YAML: {e}", file=sys.stderr)
        return 2
    groups = [
        d for d in docs if d.get("kind") == KIND and str(d.get("apiVersion", "")).startswith(GROUP + "/")
    ]
    if not groups:
        print(f"{args.filename}: no RoleBasedGroup in it", file=sys.stderr)
        return 2
    return asyncio.run(plan_all(groups, args, sys.stdout))


async def plan_all(groups: list[JSON], args: argparse.Namespace, out: TextIO) -> int:
    default_ns = args.namespace or os.environ.get("RBG_NAMESPACE", "default")
    failed = False
    async with await KubeClient.from_kubeconfig(args.kubeconfig) as kube:
        placer = PlacementActivities(kube, None, args.worker_namespace)
        for doc in groups:
            failed |= not await plan_one(
                kube,
                placer,
                doc,
                args.namespace or (doc.get("metadata") or {}).get("namespace") or default_ns,
                out,
            )
    return 1 if failed else 0


async def plan_one(
    kube: KubeClient, placer: PlacementActivities, doc: JSON, namespace: str, out: TextIO
) -> bool:
    """Print the plan of one group; False when applying it would be refused."""
    doc = {**doc, "metadata": {**(doc.get("metadata") or {}), "namespace": namespace}}
    name = doc["metadata"].get("name", "?")
    print(f"RoleBasedGroup {namespace}/{name}", file=out)
    rbg, problems = parse_rbg(doc)
    if rbg is None or problems:
        for p in problems:
            print(f"  refused: {p}", file=out)
        return False
    live = await kube.get_or_none(GROUPS.path(namespace, name))
    live_internal = internal_form(live) if live is not None else None
    plan = preview(rbg, doc, live_internal)
    for line in plan.lines:
        print(f"  {line}", file=out)
    if rbg.spec.placement is None or rbg.spec.placement.policy == "None":
        return True
    if plan.operation == "upgrade":
        print("  placement: kept where the group runs (an upgrade never moves placed pods)", file=out)
        return True
    if live_internal is not None:
        # The group's own grant and recorded domains are kept, as the operation keeps them.
        try:
            status: RoleBasedGroupStatus | None = RoleBasedGroupStatus.model_validate(
                live_internal.get("status") or {}
            )
        except ValidationError:
            status = None  # a status edited by hand: placed afresh, as the operation would
        uid = live_internal["metadata"].get("uid")
        rbg = rbg.model_copy(
            update={"metadata": rbg.metadata.model_copy(update={"uid": uid}), "status": status}
        )
    choice = await placer.preview(rbg)
    print(f"  placement: {choice.error or choice.summary}", file=out)
    return choice.error is None
