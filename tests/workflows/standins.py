"""Stand-in activities for workflow tests: the real workflows run against these instead of a cluster.

Each stand-in is registered under the name of its stub in `rbg_flows.activities.interface`, so the
workflows schedule them exactly as they schedule the real ones (`deploy_role` logs its two halves as
`apply_role` and `wait_role`, and fails them apart). They keep a log of what was asked of
them and let a test hold a role's readiness (a gate) or make its wait report the ready deadline.
StatefulSet partitions are modelled by the one rule the workflows rely on: pods at ordinals at or above
the partition run the update revision.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import check_ref
from rbg_flows.api import parse_rbg, workload_name
from rbg_flows.api.validation import FieldError
from rbg_flows.manifests.hashing import spec_revision_hash
from rbg_flows.messages import (
    AppliedWorkload,
    DeployedRole,
    PartitionRequest,
    PlacementChoice,
    PruneRequest,
    RevisionInfo,
    RevisionRecord,
    RoleDeploy,
    RolePlacement,
    RoleProgress,
    RoleRollState,
    SpecEvent,
    SpecRef,
    SpecRewrite,
    StatusUpdate,
    StepRequest,
    StepWait,
    Timeouts,
    ValidationReport,
    spec_event,
)


@dataclass
class Calls:
    """What the workflows asked for, in order."""

    names: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # roles, in apply order
    reports: list[StatusUpdate] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    built_with: list[dict[str, str] | None] = field(default_factory=list)  # SpecRef.profiles of each build

    def conditions(self, type_: str) -> list[tuple[str, str]]:
        return [(c.status, c.reason) for u in self.reports for c in u.conditions if c.type == type_]

    def events(self) -> list[str]:
        return [u.event.reason for u in self.reports if u.event is not None]


CLUSTER = "wf0cafe0"  # the cluster every group of these tests lives in, and the stand-in worker's


class StandIns:
    def __init__(self, timeouts: Timeouts | None = None) -> None:
        # The worker's cluster is the groups' (conftest.CLUSTER): the entity checks it at each operation.
        self.timeouts = timeouts or Timeouts(heartbeat_every_seconds=0.2, cluster=CLUSTER)
        self.calls = Calls()
        self.gates: dict[str, asyncio.Event] = {}  # role -> opened when the role may become ready
        self.past_deadline: set[str] = set()  # roles whose first wait reports the ready deadline
        self.revisions: dict[str, int] = {}  # spec hash -> revision number
        self.specs: dict[str, dict[str, Any]] = {}  # revision name -> spec
        self.updated: dict[str, int] = {}  # StatefulSet role -> pods on the update revision
        self.generations: dict[str, int] = {}
        self.rbg_objects: dict[str, dict[str, Any]] = {}  # name -> the object as last applied by a test
        # "activity" or "activity/role" -> errors its next attempts raise, in order
        self.failures: dict[str, list[str]] = {}
        self.report_gates: dict[str, asyncio.Event] = {}  # event reason -> opened when its report may end
        self.reporting: set[str] = set()  # event reasons whose report is held right now
        # The cluster's ClusterEngineRuntimeProfiles: name -> (updateStrategy, fingerprint)
        self.profiles: dict[str, tuple[str, str]] = {}
        # What the placement activity decides for every group that asks (default: nothing placed)
        self.placement = PlacementChoice()
        self.placed_roles: dict[str, RolePlacement | None] = {}  # role -> the placement it was applied with

    def hold(self, role: str) -> asyncio.Event:
        gate = self.gates[role] = asyncio.Event()
        return gate

    def hold_report(self, reason: str) -> asyncio.Event:
        """Keep the status report that posts the Event `reason` from finishing until the gate opens."""
        gate = self.report_gates[reason] = asyncio.Event()
        return gate

    # -- helpers ----------------------------------------------------------------------------------
    def _log(self, name: str, role: str = "") -> None:
        self.calls.names.append(name)
        pending = self.failures.get(f"{name}/{role}") or self.failures.get(name)
        if pending:
            # A transient error, as the Kubernetes call wrapper raises for a 503 (retryable).
            raise ApplicationError(pending.pop(0), type="Kube503")

    def _resolve(self, ref: SpecRef) -> None:
        """What the real activities check of the group a step names (`check_ref`), against the object the
        test last applied or a rollback rewrote."""
        obj = self.rbg_objects.get(ref.key.name)
        check_ref(ref, spec_event(obj) if obj is not None else None)
        self.calls.built_with.append(ref.profiles)

    def _plans(self, event: SpecEvent) -> ValidationReport:
        rbg, problems = parse_rbg(event.obj)
        if rbg is None or problems:
            return ValidationReport(problems=problems)
        missing = [
            FieldError(
                path=f"spec.roles[{i}].engineRuntimes[{j}].profileName",
                message=f'ClusterEngineRuntimeProfile "{rt.profile_name}" not found',
            )
            for i, role in enumerate(rbg.spec.roles)
            for j, rt in enumerate(role.engine_runtimes)
            if rt.profile_name not in self.profiles
        ]
        if missing:
            return ValidationReport(problems=missing)
        report = ValidationReport.plan(rbg)
        report.profiles = self._fingerprints(event)
        return report

    def _fingerprints(self, event: SpecEvent) -> dict[str, str]:
        """The RollingUpdate profiles the group uses, as the real prepare reports them."""
        used = {
            rt.get("profileName") for r in event.obj["spec"]["roles"] for rt in r.get("engineRuntimes") or []
        }
        return {
            n: fp for n, (strategy, fp) in self.profiles.items() if n in used and strategy == "RollingUpdate"
        }

    def _roll_state(self, req: PartitionRequest, partition: int) -> RoleRollState:
        n = req.replicas
        floor = req.floor or 0
        partition = max(min(partition, n), floor)
        on_target = [i >= partition for i in range(n)]
        self.updated[req.role] = sum(on_target)
        return RoleRollState(
            role=req.role,
            workload=workload_name(req.key.name, req.role),
            replicas=n,
            partition=partition,
            floor=floor,
            generation=self.generations.get(req.role, 1),
            total=n,
            on_target=on_target,
            ready_on_target=sum(on_target),
            done=True,
        )

    # -- the activities -----------------------------------------------------------------------------
    def activities(self) -> Sequence[Callable[..., Any]]:
        @activity.defn(name="settings")
        async def settings() -> Timeouts:
            self._log("settings")
            return self.timeouts

        @activity.defn(name="prepare")
        async def prepare(event: SpecEvent) -> ValidationReport:
            self._log("prepare")
            return self._plans(event)

        @activity.defn(name="record_revision")
        async def record_revision(event: SpecEvent) -> RevisionInfo:
            self._log("record_revision")
            rbg, _ = parse_rbg(event.obj)
            assert rbg is not None
            h = spec_revision_hash(rbg.spec, self._fingerprints(event))
            previous = max(self.revisions.items(), key=lambda kv: kv[1], default=None)
            if h not in self.revisions:
                self.revisions[h] = len(self.revisions) + 1
            name = f"{rbg.metadata.name}-{h}"
            self.specs[name] = copy.deepcopy(event.obj["spec"])
            return RevisionInfo(
                name=name,
                revision=self.revisions[h],
                hash=h,
                created=previous is None or previous[0] != h,
                previous=f"{rbg.metadata.name}-{previous[0]}" if previous else None,
                history=[
                    RevisionRecord(name=f"{rbg.metadata.name}-{k}", revision=v)
                    for k, v in sorted(self.revisions.items(), key=lambda kv: kv[1])
                ],
            )

        @activity.defn(name="place")
        async def place(ref: SpecRef) -> PlacementChoice:
            self._log("place")
            self._resolve(ref)
            return self.placement

        @activity.defn(name="deploy_role")
        async def deploy_role(req: RoleDeploy) -> DeployedRole:
            role, n = req.plan.role, req.plan.replicas
            applied = req.applied
            if applied is None:
                self._log("apply_role", role)
                self._resolve(req.ref)
                self.calls.applied.append(role)
                self.placed_roles[role] = req.placement
                self.generations[role] = self.generations.get(role, 0) + 1
                applied = AppliedWorkload(
                    workload=workload_name(req.key.name, role), generation=self.generations[role]
                )
            self._log("wait_role", role)
            if role in self.past_deadline and req.deadline_seconds is not None:
                progress = RoleProgress(role=role, replicas=n, ready=0, updated=0, done=False, timed_out=True)
                return DeployedRole(applied=applied, progress=progress)
            gate = self.gates.get(role)
            while gate is not None and not gate.is_set():
                activity.heartbeat()
                try:
                    await asyncio.wait_for(gate.wait(), 0.2)
                except TimeoutError:
                    continue
            progress = RoleProgress(role=role, replicas=n, ready=n, updated=n, done=True)
            return DeployedRole(applied=applied, progress=progress)

        @activity.defn(name="report")
        async def report(upd: StatusUpdate) -> None:
            self._log("report")
            reason = upd.event.reason if upd.event else ""
            gate = self.report_gates.get(reason)
            if gate is not None:
                self.reporting.add(reason)
                await gate.wait()
                self.reporting.discard(reason)
            self.calls.reports.append(upd)

        @activity.defn(name="set_partition")
        async def set_partition(req: PartitionRequest) -> RoleRollState:
            self._log("set_partition")
            self._resolve(req.ref)
            # A hold keeps every pod where it is: the partition above the pods already moved.
            held = req.replicas - self.updated.get(req.role, 0)
            return self._roll_state(req, held if req.partition is None else req.partition)

        @activity.defn(name="step_role")
        async def step_role(req: StepRequest) -> RoleRollState:
            self._log("step_role")
            self._resolve(req.ref)
            assert req.partition is not None
            return self._roll_state(req, req.partition)

        @activity.defn(name="wait_step")
        async def wait_step(req: StepWait) -> RoleRollState:
            self._log("wait_step")
            return req.state.model_copy(update={"done": True, "ready_on_target": req.want})

        @activity.defn(name="prune_roles")
        async def prune_roles(req: PruneRequest) -> list[str]:
            self._log("prune_roles")
            self.calls.pruned.extend(req.roles)
            return req.roles

        @activity.defn(name="rewrite_spec")
        async def rewrite_spec(req: SpecRewrite) -> SpecEvent:
            self._log("rewrite_spec")
            current = self.rbg_objects[req.key.name]
            obj = copy.deepcopy(current)
            obj["spec"] = copy.deepcopy(self.specs[req.revision])
            obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
            self.rbg_objects[req.key.name] = obj
            return spec_event(obj)

        return [
            settings,
            prepare,
            record_revision,
            place,
            deploy_role,
            report,
            set_partition,
            step_role,
            wait_step,
            prune_roles,
            rewrite_spec,
        ]
