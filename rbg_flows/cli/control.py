"""`rbg-flows status|history|diff|rollback|pause|resume|abort NAME [-n NS]`: what people use to watch
and steer upgrades. The same verbs back the kubectl plugin (`kubectl rbg ...`, `rbg_flows.cli.kubectl_rbg`).

Reads come from the Kubernetes API (the group, its ControllerRevisions) and from the entity workflow's
queries (live per-role progress); controls are Updates on the entity workflow, so a refusal comes back
with its reason and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from rbg_flows.api.keys import GROUP_NAME_LABEL, rbg_path
from rbg_flows.cli.processes import add_cluster_id_argument, cluster_id_of
from rbg_flows.codec import CodecError, add_key_file_argument, load_codec
from rbg_flows.kube.access import may
from rbg_flows.kube.client import KubeClient
from rbg_flows.manifests.labels import owned_by
from rbg_flows.messages import GroupState, RbgKey, RoleProgress
from rbg_flows.rollout.history import find_revision, format_history, history_rows, ordered, revision_diff
from rbg_flows.temporal import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, connect, run_with_runtime
from rbg_flows.workflows.deploy import DeployWorkflow
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow
from rbg_flows.workflows.upgrade import UpgradeWorkflow

JSON = dict[str, Any]

LIVE_PHASES = ("Deploying", "Upgrading", "Scaling", "Paused")


class Refused(Exception):
    """A control the workflow (or the cluster) refused; the message says why."""


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="RoleBasedGroup name")
    p.add_argument("-n", "--namespace", default=os.environ.get("RBG_NAMESPACE", "default"))
    p.add_argument("--temporal-address", default=os.environ.get("RBG_TEMPORAL_ADDRESS", DEFAULT_ADDRESS))
    p.add_argument(
        "--temporal-namespace", default=os.environ.get("RBG_TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE)
    )
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: ~/.kube/config")
    add_cluster_id_argument(p)
    add_key_file_argument(p)


VERBS = ("status", "history", "diff", "rollback", "pause", "resume", "abort")
_HELP = {
    "status": "phase, revisions, conditions and per-role progress of a group",
    "history": "the group's revisions with a change summary",
    "diff": "unified diff of the role specs of two revisions",
    "rollback": "roll the group back to a revision (keeps current replicas)",
    "pause": "hold the rollout before its next step",
    "resume": "let a paused rollout go on",
    "abort": "stop the upgrade in flight and return to the revision before it",
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb in VERBS:
        add_verb(sub, verb)


def add_verb(sub: argparse._SubParsersAction[argparse.ArgumentParser], verb: str, as_name: str = "") -> None:
    """One control verb as a subcommand (`as_name`: the name it has there, e.g. kubectl's `undo`)."""
    p = sub.add_parser(as_name or verb, help=_HELP[verb])
    add_common(p)
    command: Command
    if verb == "status":
        live = p.add_mutually_exclusive_group()
        live.add_argument(
            "--watch", "-w", action="store_true", help="keep refreshing until the operation ends"
        )
        live.add_argument(
            "--once", action="store_true", help="print once, even on a terminal during a rollout"
        )
        p.add_argument("--interval", type=float, default=1.0)
        command = status
    elif verb == "history":
        command = history
    elif verb == "diff":
        p.add_argument("--revision", type=int, required=True, help="the revision to compare")
        p.add_argument("--to-revision", type=int, default=None, help="default: the current revision")
        command = diff
    elif verb == "rollback":
        p.add_argument(
            "--to-revision", type=int, default=None, help="default: the revision before the current one"
        )
        command = rollback
    else:
        command = control(verb)
    p.set_defaults(func=lambda a: run(a, command))


Command = Callable[["Session", argparse.Namespace], Awaitable[None]]


class Session:
    def __init__(self, kube: KubeClient, client: Client, key: RbgKey, out: TextIO = sys.stdout):
        self.kube, self.client, self.key, self.out = kube, client, key, out

    @property
    def entity(self) -> Any:
        return self.client.get_workflow_handle(self.key.workflow_id)

    async def may_steer(self) -> None:
        """Refuse a control the caller could not make with kubectl: the controls reach the group through
        Temporal, which knows nothing of Kubernetes RBAC, so the caller's right to patch the group is
        asked of the API server first."""
        ns, name = self.key.namespace, self.key.name
        allowed, reason = await may(self.kube, "patch", "rolebasedgroups", ns, name)
        if not allowed:
            why = f" ({reason})" if reason else ""
            raise Refused(
                f"you may not patch RoleBasedGroup {ns}/{name}{why}: pause, resume, abort and rollback "
                "need the right to patch the group"
            )

    async def group(self) -> JSON:
        obj = await self.kube.get_or_none(rbg_path(self.key.namespace, self.key.name))
        if obj is None:
            raise Refused(f"RoleBasedGroup {self.key.namespace}/{self.key.name} not found")
        return obj

    async def revisions(self, obj: JSON) -> list[JSON]:
        items = (
            await self.kube.get(
                f"/apis/apps/v1/namespaces/{self.key.namespace}/controllerrevisions",
                labelSelector=f"{GROUP_NAME_LABEL}={self.key.name}",
            )
        )["items"]
        uid = obj["metadata"]["uid"]
        # StatefulSets keep revisions with the same labels: only those the group owns.
        return ordered([r for r in items if owned_by(r, uid)])

    async def state(self) -> GroupState | None:
        try:
            state: GroupState = await self.entity.query(RoleBasedGroupWorkflow.get_state)
        except RPCError:
            return None
        return state

    async def progress(self, state: GroupState | None) -> dict[str, RoleProgress]:
        if state is None or state.current is None:
            return {}
        handle = self.client.get_workflow_handle(state.current.workflow_id)
        query = UpgradeWorkflow.progress if state.current.kind == "upgrade" else DeployWorkflow.progress
        try:
            progress: dict[str, RoleProgress] = await handle.query(query)
        except RPCError:
            return {}
        return progress


def run(args: argparse.Namespace, command: Command) -> int:
    async def main(runtime: Runtime) -> int:
        kube = await KubeClient.from_kubeconfig(args.kubeconfig)
        try:
            codec = load_codec(args.codec_key_file)
            client = await connect(args.temporal_address, args.temporal_namespace, runtime, codec)
            cluster = await cluster_id_of(kube, args.cluster_id)
            key = RbgKey(cluster=cluster, namespace=args.namespace, name=args.name)
            await command(Session(kube, client, key), args)
            return 0
        except (Refused, CodecError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        finally:
            await kube.close()

    return run_with_runtime(main)


# -- reads ----------------------------------------------------------------------------------------
def bar(done: int, total: int, width: int = 20) -> str:
    filled = width if total == 0 else round(width * min(done, total) / total)
    return "#" * filled + "." * (width - filled)


def render_status(obj: JSON, state: GroupState | None, progress: dict[str, RoleProgress]) -> str:
    st = obj.get("status") or {}
    lines = [
        f"RoleBasedGroup {obj['metadata']['namespace']}/{obj['metadata']['name']}  "
        f"generation {obj['metadata'].get('generation')} (observed {st.get('observedGeneration', '-')})",
        f"phase: {st.get('phase', 'Pending')}   current revision: {st.get('currentRevision', '-')}   "
        f"update revision: {st.get('updateRevision', '-')}",
    ]
    if state is not None and state.current is not None:
        lines.append(
            f"operation: {state.current.kind} of generation {state.current.generation} "
            f"({state.current.workflow_id})"
        )
    if state is not None and state.paused:
        lines.append("rollouts are PAUSED (rbg-flows resume to continue)")
    lines.append("")
    lines.append(f"{'ROLE':<16} {'READY':>7} {'UPDATED':>8}  PROGRESS")
    by_role = {r["name"]: r for r in st.get("roleStatuses") or []}
    for name in [r["name"] for r in (obj.get("spec") or {}).get("roles") or []]:
        p = progress.get(name)
        if p is not None:
            ready, updated, replicas = p.ready, p.updated, p.replicas
        else:
            r = by_role.get(name, {})
            ready, updated, replicas = (
                r.get("readyReplicas", 0),
                r.get("updatedReplicas", 0),
                r.get("replicas", 0),
            )
        lines.append(
            f"{name:<16} {ready:>3}/{replicas:<3} {updated:>4}/{replicas:<3}  [{bar(updated, replicas)}]"
        )
    lines.append("")
    lines.append(f"{'CONDITION':<24} {'STATUS':<8} {'REASON':<26} MESSAGE")
    for c in st.get("conditions") or []:
        lines.append(f"{c['type']:<24} {c['status']:<8} {c.get('reason', ''):<26} {c.get('message', '')}")
    return "\n".join(lines)


async def status(session: Session, args: argparse.Namespace) -> None:
    live = args.watch or (not args.once and session.out.isatty())
    while True:
        obj = await session.group()
        state = await session.state()
        text = render_status(obj, state, await session.progress(state))
        running = (obj.get("status") or {}).get("phase") in LIVE_PHASES or (state and state.current)
        if live and session.out.isatty():
            session.out.write("\x1b[H\x1b[2J")  # redraw in place
        print(text, file=session.out, flush=True)
        if not (live and running):
            return
        print("", file=session.out)
        await asyncio.sleep(args.interval)


async def history(session: Session, args: argparse.Namespace) -> None:
    obj = await session.group()
    revisions = await session.revisions(obj)
    current = (obj.get("status") or {}).get("currentRevision")
    print(format_history(history_rows(revisions, current)), file=session.out)


async def diff(session: Session, args: argparse.Namespace) -> None:
    obj = await session.group()
    revisions = await session.revisions(obj)
    old = find_revision(revisions, args.revision)
    if old is None:
        raise Refused(f"revision {args.revision} not found (known: {known(revisions)})")
    if args.to_revision is None:
        current = (obj.get("status") or {}).get("currentRevision")
        new = next(
            (r for r in revisions if r["metadata"]["name"] == current), revisions[-1] if revisions else None
        )
    else:
        new = find_revision(revisions, args.to_revision)
    if new is None:
        raise Refused(f"revision {args.to_revision} not found (known: {known(revisions)})")
    print(revision_diff(old, new) or "no difference", file=session.out, end="")


def known(revisions: list[JSON]) -> str:
    return ", ".join(str(r.get("revision")) for r in revisions) or "none"


# -- controls -------------------------------------------------------------------------------------
async def _update(session: Session, update: Any, *args: Any) -> str:
    await session.may_steer()
    # Read first: without the codec key the control would be sent, and applied, before its encrypted
    # answer failed to decode; the query fails with the key's absence instead (CodecError).
    await session.state()
    try:
        answer: str = await session.entity.execute_update(update, *args)
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        raise Refused(getattr(cause, "message", None) or str(cause or e)) from e
    except RPCError as e:
        raise Refused(f"no workflow for {session.key.namespace}/{session.key.name}: {e.message}") from e
    return answer


async def rollback(session: Session, args: argparse.Namespace) -> None:
    to = args.to_revision
    if to is None:
        # Like `kubectl rollout undo`: the newest revision that is not the current one.
        obj = await session.group()
        current = (obj.get("status") or {}).get("currentRevision")
        earlier = [r for r in await session.revisions(obj) if r["metadata"]["name"] != current]
        if not earlier:
            raise Refused("there is no earlier revision to roll back to")
        to = int(earlier[-1]["revision"])
    print(await _update(session, RoleBasedGroupWorkflow.rollback, to), file=session.out)


def control(verb: str) -> Command:
    updates = {
        "pause": RoleBasedGroupWorkflow.pause,
        "resume": RoleBasedGroupWorkflow.resume,
        "abort": RoleBasedGroupWorkflow.abort,
    }

    async def send(session: Session, args: argparse.Namespace) -> None:
        print(await _update(session, updates[verb]), file=session.out)

    return send
