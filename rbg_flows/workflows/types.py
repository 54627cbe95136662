"""Messages between the watcher, the workflows and the activities (pydantic, so the data converter
round-trips them exactly and old histories stay readable: add fields with defaults, never rename)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from rbg_flows.api.validation import FieldError
from rbg_flows.rollout.classify import Fingerprint

TASK_QUEUE = "rbg-flows"
FIELD_MANAGER = "rbg-flows"


class RbgKey(BaseModel):
    namespace: str
    name: str

    @property
    def workflow_id(self) -> str:
        return f"rbg.{self.namespace}.{self.name}"

    def operation_id(self, kind: str, suffix: str | int) -> str:
        return f"{self.workflow_id}.{kind}.{suffix}"


class SpecEvent(BaseModel):
    """One observed version of a RoleBasedGroup: what the watcher saw, without status or managedFields."""

    uid: str
    generation: int
    obj: dict[str, Any]


# Noise that changes without the spec changing, or duplicates it: kept out of workflow histories.
_DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
ANNOTATION_PREFIX = "rbg-flows.workloads.x-k8s.io"


def spec_event(body: Mapping[str, Any]) -> SpecEvent:
    """The part of a RoleBasedGroup an operation needs (pure)."""
    meta = body["metadata"]
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in _DROP_ANNOTATIONS and not k.startswith(ANNOTATION_PREFIX)
    }
    obj = {
        "apiVersion": body.get("apiVersion", "workloads.x-k8s.io/v1alpha1"),
        "kind": body.get("kind", "RoleBasedGroup"),
        "metadata": {
            k: v
            for k, v in {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "generation": meta.get("generation", 1),
                "labels": dict(meta.get("labels") or {}),
                "annotations": annotations,
            }.items()
            if v not in ({}, None)
        },
        "spec": body.get("spec") or {},
    }
    return SpecEvent(uid=meta["uid"], generation=int(meta.get("generation", 1)), obj=obj)


class DriftEvent(BaseModel):
    """A managed workload's spec changed; ignored when the generation is one our own apply produced."""

    uid: str
    workload: str
    generation: int


class Timeouts(BaseModel):
    """Durations an operation uses; tests shorten them, production keeps the defaults."""

    ready_deadline_seconds: float = 1800.0
    apply_timeout_seconds: float = 60.0
    heartbeat_timeout_seconds: float = 15.0
    heartbeat_every_seconds: float = 3.0


class EntityInput(BaseModel):
    key: RbgKey
    timeouts: Timeouts = Field(default_factory=Timeouts)
    state: GroupState | None = None  # set by continue-as-new


class OperationRecord(BaseModel):
    workflow_id: str
    kind: str
    generation: int
    outcome: str = "running"
    message: str = ""


class RevisionRecord(BaseModel):
    name: str
    revision: int


class RolloutRequest(BaseModel):
    """A manual rollback (or an abort, which is a rollback to the revision current before the upgrade)
    waiting for the entity loop to rewrite the spec."""

    to_revision: int
    mode: Literal["rollback", "abort"] = "rollback"
    generation: int = 0  # the generation the rewritten spec got, once done
    message: str = ""


class GroupState(BaseModel):
    """Everything the entity workflow knows; carried whole across continue-as-new."""

    key: RbgKey
    uid: str = ""
    latest: SpecEvent | None = None
    settled_generation: int = 0
    deployed: bool = False
    deleted: bool = False
    phase: str = "Pending"
    operations: int = 0
    current: OperationRecord | None = None
    recent: list[OperationRecord] = Field(default_factory=list)
    known_generations: dict[str, int] = Field(default_factory=dict)
    drifted: dict[str, int] = Field(default_factory=dict)
    # Upgrades (added with the upgrade operation; defaults keep older states readable).
    applied: Fingerprint | None = None  # the spec last rolled out completely
    revisions: list[RevisionRecord] = Field(default_factory=list)  # kept ControllerRevisions, oldest first
    current_revision: RevisionRecord | None = None
    paused: bool = False
    paused_reported: bool = False  # the status says what `paused` says
    phase_before_pause: str = ""
    unsettled_roles: list[str] = Field(default_factory=list)  # left mid-rollout by a cut-short upgrade
    request: RolloutRequest | None = None  # a rollback/abort not yet turned into a spec
    modes: dict[int, str] = Field(default_factory=dict)  # generation -> "rollback"/"abort" it came from


class OperationInput(BaseModel):
    """What every operation child workflow gets: the group, the spec to reach, where to report."""

    key: RbgKey
    event: SpecEvent
    workflow_id: str  # the entity's, written to status.workflowId
    timeouts: Timeouts = Field(default_factory=Timeouts)


class DeployInput(OperationInput):
    reason: Literal["spec", "repair", "scale"] = "spec"
    deployed_before: bool = False


class DeployResult(BaseModel):
    generation: int
    outcome: Literal["ready", "invalid", "failed"]
    phase: str
    message: str = ""
    workload_generations: dict[str, int] = Field(default_factory=dict)
    revision: int = 0
    revision_name: str = ""
    history: list[RevisionRecord] = Field(default_factory=list)


class UpgradeInput(OperationInput):
    mode: Literal["upgrade", "rollback", "abort"] = "upgrade"
    roles: list[str] = Field(default_factory=list)  # roles whose template changed: the ones that roll
    added: list[str] = Field(default_factory=list)  # roles the new spec adds: created before the roll
    removed: list[str] = Field(default_factory=list)  # roles the new spec drops: deleted after the roll
    replicas: dict[str, int] = Field(default_factory=dict)  # replicas to roll at (old ones: then scale)
    current_revision: str | None = None  # status.currentRevision while the upgrade runs
    paused: bool = False
    final: bool = True  # False when a scale follows: observedGeneration waits for it


class RoleRollState(BaseModel):
    """A StatefulSet role as a rollout step sees it."""

    role: str
    workload: str
    replicas: int  # N, the replicas rolled at (surge pods excluded)
    partition: int
    floor: int  # the user's partition: the rollout never goes below it
    generation: int
    total: int = 0  # replicas applied: N plus the surge while rolling
    on_target: list[bool] = Field(default_factory=list)  # per ordinal < N: pod on the target revision
    ready_on_target: int = 0
    done: bool = False  # set by a wait: the step it waited for has finished
    timed_out: bool = False

    @property
    def updated(self) -> int:
        return sum(self.on_target)

    @property
    def ready(self) -> int:
        return self.ready_on_target


class PruneRequest(BaseModel):
    """Delete the objects of roles a group no longer has."""

    key: RbgKey
    uid: str
    roles: list[str]


class PartitionRequest(BaseModel):
    key: RbgKey
    event: SpecEvent
    role: str
    replicas: int
    partition: int | None = None  # None: hold (keep every pod where it is), else this partition
    floor: int | None = None  # the rollout's floor (role and lock-step rule partitions); None: the role's


class WaitTiming(BaseModel):
    """How a wait activity paces itself: it returns as soon as readiness differs from `known_ready`, but
    not sooner than `min_report_seconds` after the previous report (bounds the history), and when the
    deadline passes; it heartbeats every `heartbeat_every_seconds`."""

    known_ready: int = -1
    min_report_seconds: float = 2.0
    deadline_seconds: float | None = None
    heartbeat_every_seconds: float = 3.0


class StepRequest(PartitionRequest, WaitTiming):
    """Set the partition and wait for the step in one activity."""

    want: int


class StepWait(WaitTiming):
    key: RbgKey
    uid: str
    state: RoleRollState
    want: int  # ready pods on the target revision (ordinals < N) that end the step


class SpecRewrite(BaseModel):
    """Rewrite the RBG spec to a revision's roles, keeping each role's current replicas."""

    key: RbgKey
    uid: str
    revision: str  # ControllerRevision name


class ValidationReport(BaseModel):
    problems: list[FieldError] = Field(default_factory=list)
    levels: list[list[str]] = Field(default_factory=list)
    # role -> (kind label for summaries, instances expected)
    roles: dict[str, RolePlan] = Field(default_factory=dict)

    @property
    def message(self) -> str:
        return "; ".join(f"{p.path}: {p.message}" for p in self.problems)


class RolePlan(BaseModel):
    role: str
    kind: str
    workload: str
    replicas: int
    pods_per_instance: int = 1


class RoleRequest(BaseModel):
    key: RbgKey
    event: SpecEvent
    role: str


class AppliedWorkload(BaseModel):
    workload: str
    generation: int


class WaitRequest(WaitTiming):
    key: RbgKey
    uid: str
    plan: RolePlan
    min_generation: int


class RoleProgress(BaseModel):
    role: str
    replicas: int
    ready: int
    updated: int
    done: bool
    timed_out: bool = False


class ConditionUpdate(BaseModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


class RevisionInfo(BaseModel):
    name: str
    revision: int
    hash: str
    created: bool = False
    previous: str | None = None  # the revision that was current before this spec, if any
    history: list[RevisionRecord] = Field(default_factory=list)  # every kept revision, oldest first


class StatusUpdate(BaseModel):
    key: RbgKey
    uid: str
    phase: str | None = None
    observed_generation: int | None = None
    conditions: list[ConditionUpdate] = Field(default_factory=list)
    workflow_id: str | None = None
    event: EventRecord | None = None  # posted after the status is written
    current_revision: str | None = None
    update_revision: str | None = None


class EventRecord(BaseModel):
    key: RbgKey
    uid: str
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str


EntityInput.model_rebuild()
StatusUpdate.model_rebuild()
ValidationReport.model_rebuild()
