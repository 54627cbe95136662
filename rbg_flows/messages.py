"""Messages between the watcher, the CLI, the workflows and the activities, and the names they share
(workflow types, search attributes, the task queue).

Pydantic models, so the data converter round-trips them exactly and recorded histories stay readable:
add fields with defaults, never rename. This module imports only `api`, so the watcher and the CLI can
speak to the workflows without loading any workflow, activity or Kubernetes client code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from rbg_flows.api import RoleBasedGroup, workload_name
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.api.validation import FieldError, dependency_levels

TASK_QUEUE = "rbg-flows"

# Workflow types as registered with Temporal: the watcher and the CLI address them by these names.
ENTITY_WORKFLOW = "RoleBasedGroup"
DEPLOY_WORKFLOW = "Deploy"
UPGRADE_WORKFLOW = "Upgrade"
SET_WORKFLOW = "RoleBasedGroupSet"

RBG_NAMESPACE = SearchAttributeKey.for_keyword("RbgNamespace")
RBG_NAME = SearchAttributeKey.for_keyword("RbgName")
RBG_UID = SearchAttributeKey.for_keyword("RbgUid")
RBG_PHASE = SearchAttributeKey.for_keyword("RbgPhase")
RBG_REVISION = SearchAttributeKey.for_int("RbgRevision")
RBG_OPERATION = SearchAttributeKey.for_keyword("RbgOperation")  # on operation workflows only
RBG_CLUSTER = SearchAttributeKey.for_keyword("RbgCluster")
SEARCH_ATTRIBUTES = (RBG_NAMESPACE, RBG_NAME, RBG_UID, RBG_PHASE, RBG_REVISION, RBG_OPERATION, RBG_CLUSTER)
# RbgOperation values, one per kind of operation workflow (Deploy also scales and repairs; Upgrade also
# rolls back and aborts): what a saved view filters on.
OPERATIONS = ("Deploy", "Upgrade", "Scale", "Repair", "Migrate", "Rollback", "Abort", "Failover")


FIRST_PHASE = "Deploying"


def start_attributes(
    namespace: str, name: str, uid: str, cluster: str = "", phase: str | None = FIRST_PHASE
) -> TypedSearchAttributes:
    """Search attributes an entity workflow starts with (the phase follows as it changes). It is started
    with the spec it must deploy, so it starts `Deploying`: an upsert (a billed action) fewer per group.
    A set's workflow has no phase (None)."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RBG_NAMESPACE, namespace),
        SearchAttributePair(RBG_NAME, name),
        SearchAttributePair(RBG_UID, uid),
    ]
    if phase is not None:
        pairs.append(SearchAttributePair(RBG_PHASE, phase))
    if cluster:
        pairs.append(SearchAttributePair(RBG_CLUSTER, cluster))
    return TypedSearchAttributes(pairs)


def operation_attributes(
    key: RbgKey, uid: str, operation: str, revision: int | None
) -> TypedSearchAttributes:
    """Search attributes an operation workflow starts with: the group's, so `RbgName="x"` lists the entity
    and every operation, and the kind (`RbgOperation`); the revision when it is already known (a scale or
    a repair keeps it; Deploy and Upgrade upsert theirs once recorded)."""
    assert operation in OPERATIONS, operation
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RBG_NAMESPACE, key.namespace),
        SearchAttributePair(RBG_NAME, key.name),
        SearchAttributePair(RBG_UID, uid),
        SearchAttributePair(RBG_OPERATION, operation),
    ]
    if key.cluster:
        pairs.append(SearchAttributePair(RBG_CLUSTER, key.cluster))
    if revision:
        pairs.append(SearchAttributePair(RBG_REVISION, revision))
    return TypedSearchAttributes(pairs)


# A cluster id goes into workflow ids (`rbg.<cluster>.<ns>.<name>`, split on dots) and task queue names:
# a DNS label, so it has no dot and reads well in the Temporal UI.
_CLUSTER_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
CLUSTER_ID_FROM_UID_CHARS = 8


def check_cluster_id(cluster: str) -> str:
    """`cluster` if it can name an installation, else ValueError saying what a cluster id looks like."""
    if not _CLUSTER_ID.match(cluster):
        raise ValueError(
            f"invalid cluster id {cluster!r}: 1-32 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit (it goes into workflow ids and task queue names)"
        )
    return cluster


def cluster_id_from_uid(uid: str) -> str:
    """The default cluster id: the first hex characters of the `kube-system` namespace's UID. That UID is a
    random (v4) UUID fixed for the cluster's life, so 8 characters are 32 random bits: two installations
    collide with probability n²/2³³ (about one in a million for a hundred clusters on one Temporal
    namespace); installations that want certainty or readable names configure `--cluster-id`."""
    return check_cluster_id(uid.replace("-", "").lower()[:CLUSTER_ID_FROM_UID_CHARS])


def task_queue_for(cluster: str) -> str:
    """The default task queue of an installation: one per cluster, so a worker only polls its own work."""
    return f"{TASK_QUEUE}.{cluster}" if cluster else TASK_QUEUE


class Fingerprint(BaseModel):
    """What classification needs of one spec: its revision hash, each role's hash and replicas."""

    spec_hash: str
    role_hashes: dict[str, str] = Field(default_factory=dict)
    replicas: dict[str, int] = Field(default_factory=dict)


def profile_fingerprint(spec: ClusterEngineRuntimeProfileSpec) -> str:
    """What a ClusterEngineRuntimeProfile injects, as a short stable digest (its update strategy left
    out): the watcher and the worker compute it alike, so the entity can tell a changed profile from one
    it has built with."""
    data = spec.model_dump(mode="json", by_alias=True, exclude={"update_strategy"})
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class ProfileChange(BaseModel):
    """A ClusterEngineRuntimeProfile a group uses was created or changed (signal `profile_changed`)."""

    name: str
    fingerprint: str
    update_strategy: Literal["NoUpdate", "RollingUpdate"] = "NoUpdate"


class RbgKey(BaseModel):
    namespace: str
    name: str
    # The installation the group lives in: several clusters may share one Temporal namespace. Empty only
    # in messages from before clusters had ids.
    cluster: str = ""

    @property
    def workflow_id(self) -> str:
        # Neither a cluster id nor a namespace has a dot; a name may: `parse` splits from the left.
        if self.cluster:
            return f"rbg.{self.cluster}.{self.namespace}.{self.name}"
        return f"rbg.{self.namespace}.{self.name}"

    @classmethod
    def parse(cls, workflow_id: str) -> RbgKey | None:
        """The key of an entity workflow id (`rbg.<cluster>.<ns>.<name>`), None if it is not one."""
        parts = workflow_id.split(".", 3)
        if len(parts) != 4 or parts[0] != "rbg" or not _CLUSTER_ID.match(parts[1]):
            return None
        return cls(cluster=parts[1], namespace=parts[2], name=parts[3])

    @property
    def set_workflow_id(self) -> str:
        """The id of the RoleBasedGroupSet of this name's workflow (`rbgs.…`: a set and a group may share
        a name)."""
        return "rbgs." + self.workflow_id.removeprefix("rbg.")

    def operation_id(self, kind: str, suffix: str | int) -> str:
        return f"{self.workflow_id}.{kind}.{suffix}"


# How the activities name a role's objects. 1: as the reference since v0.5 (headless Service
# `s-<rbg>-<role>`); 0: v0.4 (`<rbg>-<role>`), which groups deployed by earlier rbg_flows versions still have.
# An event says the scheme of the code that observed it, so an entity that hears of a newer scheme than
# its group was deployed under moves it (and old histories, whose events say 0, replay unchanged).
NAMING_SCHEME: Final = 1


class SpecEvent(BaseModel):
    """One observed version of a RoleBasedGroup: what the watcher saw, without status or managedFields."""

    uid: str
    generation: int
    obj: dict[str, Any]
    naming: int = 0  # NAMING_SCHEME of the code that made the event (0 in histories older than it)


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
    return SpecEvent(
        uid=meta["uid"], generation=int(meta.get("generation", 1)), obj=obj, naming=NAMING_SCHEME
    )


class SpecRef(BaseModel):
    """Which version of a group an operation step acts on, without its spec: the activity reads the group
    from the cluster and checks it is still this one, so a step's input in a history is a few names and
    numbers instead of the whole object (the operation's input keeps the one copy of the event)."""

    key: RbgKey
    uid: str
    generation: int
    # The RollingUpdate engine runtime profiles (name -> fingerprint) the operation builds with: a step
    # builds that content even when the profile has changed since (the change is the next operation's);
    # None: whatever the profiles are now (a first deploy, or an operation from before profiles).
    profiles: dict[str, str] | None = None


class DriftEvent(BaseModel):
    """A managed workload's spec changed; ignored when the generation is one our own apply produced."""

    uid: str
    workload: str
    generation: int


class AdapterChanged(BaseModel):
    """A scaling adapter of the group was scaled, created or deleted (signal `adapter_changed`)."""

    uid: str  # the group's, from the adapter's owner reference
    adapter: str
    generation: int


class PodFailure(BaseModel):
    """A pod of the group failed (signal `pod_failed`): its container restarted, it turned Failed, or its
    deletion began."""

    role: str
    pod: str
    pod_uid: str
    reason: Literal["restarted", "failed", "deleted"]


class PodRef(BaseModel):
    name: str
    uid: str


class DeletePods(BaseModel):
    key: RbgKey
    pods: list[PodRef]


class PendingFailover(BaseModel):
    """A RecreateRBGOnPodRestart failure not yet answered (failures until it starts fold into it)."""

    failure: PodFailure
    at: float  # workflow time of the first failure
    failures: int = 1


class AdapterSync(BaseModel):
    """Bring the group's scaling adapters in line with its spec (activity `sync_adapters`)."""

    key: RbgKey
    uid: str


class AdapterSyncResult(BaseModel):
    # The group as the sync left it: `rewritten` when a Bound adapter's replicas were written into the
    # role (the operation then runs for that generation).
    event: SpecEvent | None = None
    rewritten: bool = False
    uses_adapters: bool = False  # some role has scalingAdapter.enable
    events: list[EventRecord] = Field(default_factory=list)  # for the entity to post


class Timeouts(BaseModel):
    """Durations an operation uses: the worker's settings (`rbg-flows worker --ready-deadline …`),
    read by the entity when an operation starts; tests shorten them."""

    ready_deadline_seconds: float = 1800.0
    apply_timeout_seconds: float = 60.0
    heartbeat_timeout_seconds: float = 15.0
    heartbeat_every_seconds: float = 3.0
    # The cluster this worker acts on (not a duration, but read the same way): the entity refuses to run
    # a group of another cluster on it.
    cluster: str = ""


class EntityInput(BaseModel):
    key: RbgKey
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
    # Object naming (NAMING_SCHEME): the newest scheme an event has announced, and the one the group's
    # objects were last applied under as a whole (a deploy, scale, repair or migration).
    naming_seen: int = 0
    naming: int = 0
    # Engine runtime profiles: fingerprints of the RollingUpdate profiles the group was last built with
    # (or signalled since), which enter its revision hashes; and whether a signalled change of a profile
    # the group uses waits for an operation.
    profiles: dict[str, str] = Field(default_factory=dict)
    profiles_pending: bool = False
    # Scaling adapters: whether the group has (or had) roles with scalingAdapter.enable, the generation
    # they were last synced with, and whether an adapter changed since.
    adapters: bool = False
    adapters_synced: int = 0
    adapters_pending: bool = False
    # Failover: the group recreation waiting (for its backoff), the times of the recreations made, pods
    # of RecreateRoleInstanceOnPodRestart roles to recreate, and whether maxRestarts stopped it.
    failover: PendingFailover | None = None
    restarts: list[float] = Field(default_factory=list)
    instance_recreations: list[PodFailure] = Field(default_factory=list)
    restarts_exhausted: bool = False


class OperationInput(BaseModel):
    """What every operation child workflow gets: the group, the spec to reach, where to report."""

    key: RbgKey
    event: SpecEvent
    workflow_id: str  # the entity's, written to status.workflowId
    timeouts: Timeouts = Field(default_factory=Timeouts)
    profiles: dict[str, str] | None = None  # see SpecRef.profiles

    @property
    def ref(self) -> SpecRef:
        return SpecRef(
            key=self.key, uid=self.event.uid, generation=self.event.generation, profiles=self.profiles
        )


class DeployInput(OperationInput):
    reason: Literal["spec", "repair", "scale", "migrate", "failover"] = "spec"
    deployed_before: bool = False
    failure: str = ""  # a failover's: the pod failure it answers
    failed: PodFailure | None = None  # a failover's: the first failed pod


class DeployResult(BaseModel):
    generation: int
    outcome: Literal["ready", "invalid", "failed"]
    phase: str
    message: str = ""
    workload_generations: dict[str, int] = Field(default_factory=dict)
    revision: int = 0
    revision_name: str = ""
    history: list[RevisionRecord] = Field(default_factory=list)
    # Fingerprints of the RollingUpdate engine runtime profiles the workloads were built with (None: not
    # reported, as by a refused spec or a worker from before profiles)
    profiles: dict[str, str] | None = None


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
    ref: SpecRef
    role: str
    replicas: int
    partition: int | None = None  # None: hold (keep every pod where it is), else this partition
    floor: int | None = None  # the rollout's floor (role and lock-step rule partitions); None: the role's

    @property
    def key(self) -> RbgKey:
        return self.ref.key


class WaitTiming(BaseModel):
    """How a wait activity paces itself: it returns as soon as readiness differs from `known_ready`, but
    not sooner than `min_report_seconds` after the previous report (bounds the history), and when the
    deadline passes; it heartbeats every `heartbeat_every_seconds`. A wait whose watch has been failing
    for `watch_failure_seconds` fails its attempt with the watch's error (retried by Temporal) instead of
    reporting counts nobody refreshes."""

    known_ready: int = -1
    # Whether the caller already knows some pods are unschedulable: a wait also returns when that changes.
    known_unschedulable: bool = False
    min_report_seconds: float = 2.0
    deadline_seconds: float | None = None
    heartbeat_every_seconds: float = 3.0
    watch_failure_seconds: float = 30.0


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


class ScalingRule(BaseModel, frozen=True):
    """The scaling part of one `spec.coordination[]` rule, as the user wrote it."""

    name: str
    roles: tuple[str, ...]
    max_skew: int | str | None = None
    progression: Literal["OrderScheduled", "OrderReady"] = "OrderScheduled"

    @classmethod
    def of(cls, rbg: RoleBasedGroup) -> list[ScalingRule]:
        """The coordination rules of a group that carry a scaling strategy."""
        rules = []
        for rule in rbg.spec.coordination:
            scaling = rule.strategy.scaling if rule.strategy is not None else None
            if scaling is not None:
                rules.append(
                    cls(
                        name=rule.name,
                        roles=tuple(rule.roles),
                        max_skew=scaling.max_skew,
                        progression=scaling.progression,
                    )
                )
        return rules


class ValidationReport(BaseModel):
    problems: list[FieldError] = Field(default_factory=list)
    levels: list[list[str]] = Field(default_factory=list)
    # role -> (kind label for summaries, instances expected)
    roles: dict[str, RolePlan] = Field(default_factory=dict)
    # name -> fingerprint of the RollingUpdate engine runtime profiles the group uses, as resolved
    profiles: dict[str, str] = Field(default_factory=dict)
    # spec.placement asks for topology-aware placement (policy other than None)
    placement: bool = False
    # spec.coordination[] rules with a scaling strategy: a Scale moves their roles in steps
    scaling: list[ScalingRule] = Field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(f"{p.path}: {p.message}" for p in self.problems)

    @classmethod
    def plan(cls, rbg: RoleBasedGroup) -> ValidationReport:
        """The report of a valid group: its dependency levels and what each role will run.

        A gang-scheduled group is one level: its gang counts every pod, and no pod binds before all
        exist, so a role that waited for another's readiness would wait for ever (docs/placement.md).
        """
        name = rbg.metadata.name or ""
        levels = dependency_levels(rbg.spec.roles)
        if rbg.spec.pod_group_policy is not None:
            levels = [[role for level in levels for role in level]]
        return cls(
            levels=levels,
            roles={
                r.name: RolePlan(
                    role=r.name,
                    kind=r.workload.key,
                    workload=workload_name(name, r.name),
                    replicas=r.replicas,
                    pods_per_instance=r.pods_per_instance,
                )
                for r in rbg.spec.roles
            },
            placement=rbg.spec.placement is not None and rbg.spec.placement.policy != "None",
            # A gang-scheduled group scales in one step: its gang's minMember counts every pod of the
            # target, so pods of a partial step would never bind.
            scaling=ScalingRule.of(rbg) if rbg.spec.pod_group_policy is None else [],
        )


class RolePlan(BaseModel):
    role: str
    kind: str
    workload: str
    replicas: int
    pods_per_instance: int = 1


class PlacementTerm(BaseModel):
    """Pods go to nodes whose label `key` is one of `values` (a domain: never node names, except a
    single-node domain, so the scheduler keeps its choice inside it)."""

    key: str
    values: list[str]


class RolePlacement(BaseModel):
    """Where placement put a role, as the role's pod template expresses it."""

    required: bool  # required node affinity (Required) or preferred (Preferred)
    terms: list[PlacementTerm] = Field(default_factory=list)  # any one of them (ORed)
    # Pods of one LeaderWorkerSet instance share a domain of this key (pod affinity per instance).
    instance_key: str | None = None
    # `exclusive`: no other group's pods in the domain of this key.
    exclusive_key: str | None = None


class PlacementChoice(BaseModel):
    """The placement activity's decision for one operation, recorded in its history."""

    error: str | None = None  # Required, and nothing fits: the reason
    roles: dict[str, RolePlacement] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)  # status.placement
    summary: str = ""  # one line for the step's summary


class RoleRequest(BaseModel):
    ref: SpecRef
    role: str
    placement: RolePlacement | None = None
    # A step of a coordinated scale: the workload gets these replicas, not the spec's (which the
    # controller never rewrites).
    replicas: int | None = None

    @property
    def key(self) -> RbgKey:
        return self.ref.key


class ReplicasRequest(BaseModel):
    """Read the replicas the workloads of these roles have now."""

    ref: SpecRef
    roles: list[str]

    @property
    def key(self) -> RbgKey:
        return self.ref.key


class RolePodsRequest(ReplicasRequest):
    """The pods the roles have now (a failover deletes exactly these, so a retry never deletes the
    pods it made)."""

    # The failed pod: another pod of its name is its replacement (StatefulSet, LeaderWorkerSet), new
    # already, so a failover does not make it twice.
    failed: PodRef | None = None


class AppliedWorkload(BaseModel):
    workload: str
    generation: int


# What a wait waits for: every pod Ready (the role's readiness gate), or only bound to a node (a step of
# an OrderScheduled coordinated scale).
Gate = Literal["ready", "scheduled"]


class WaitRequest(WaitTiming):
    key: RbgKey
    uid: str
    plan: RolePlan
    min_generation: int
    gate: Gate = "ready"
    # A failover's: uids of the pods it deleted; the role is ready only once none of them is left.
    replaced: list[str] = Field(default_factory=list)


class RoleProgress(BaseModel):
    role: str
    replicas: int
    ready: int
    updated: int
    done: bool
    timed_out: bool = False
    # What the scheduler says of the role's pods it cannot place ("" when it places them all).
    unschedulable: str = ""


class RoleDeploy(WaitTiming):
    """Apply a role's workload (unless `applied` says it was: a later call only waits) and wait for it."""

    ref: SpecRef
    plan: RolePlan
    applied: AppliedWorkload | None = None
    placement: RolePlacement | None = None
    # A step of a coordinated scale: apply plan.replicas instead of the spec's, and wait for `gate`.
    step: bool = False
    gate: Gate = "ready"
    replaced: list[str] = Field(default_factory=list)

    @property
    def key(self) -> RbgKey:
        return self.ref.key


class DeployedRole(BaseModel):
    applied: AppliedWorkload
    progress: RoleProgress


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
    placement: dict[str, Any] | None = None  # status.placement, when an operation placed the group


class EventRecord(BaseModel):
    key: RbgKey
    uid: str
    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str
    kind: Literal["RoleBasedGroup", "RoleBasedGroupSet"] = "RoleBasedGroup"  # of the object it is about


# --- RoleBasedGroupSet ---------------------------------------------------------------------------
# The set's workflow carries no spec: its activities read the set, so its history holds names and counts.


class SetSignal(BaseModel):
    """From the watcher: the set changed (its generation), or one of its groups did (generation 0)."""

    uid: str
    generation: int = 0


class SetState(BaseModel):
    """What the set's workflow knows; carried whole across continue-as-new."""

    uid: str = ""
    generation: int = 0  # the newest signalled
    dirty: bool = True  # something changed since the last reconcile
    deleted: bool = False
    problem: str = ""  # the invalid spec or name conflict last reported (its Warning is posted once)
    reconciled: int = 0  # the generation the last reconcile started from


class SetInput(BaseModel):
    key: RbgKey
    state: SetState | None = None  # set by continue-as-new


class SetRef(BaseModel):
    key: RbgKey
    uid: str


class SetChild(BaseModel):
    """One RoleBasedGroup of the set, as read."""

    index: int
    name: str
    generation: int = 0
    current: bool = False  # built from the set's template as it is now
    ready: bool = False  # Ready=True for its generation
    message: str = ""  # what its Ready condition says when it is not


class SetView(BaseModel):
    """The set after a sync: its groups created or deleted to match spec.replicas."""

    gone: bool = False  # deleted, or replaced by a new set of the name
    generation: int = 0
    replicas: int = 0
    invalid: str = ""  # the field errors of its spec; nothing is created or deleted then
    children: list[SetChild] = Field(default_factory=list)
    created: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)  # names held by a RoleBasedGroup not of the set


class SetChildUpdate(SetRef):
    index: int


class SetChildWait(SetRef):
    index: int
    generation: int  # the child's, as the update left it
    within_seconds: float = 60.0  # then it answers as things stand, and the workflow looks again


class SetStatusUpdate(SetRef):
    generation: int
    replicas: int
    ready_replicas: int
    conditions: list[ConditionUpdate] = Field(default_factory=list)
    event: EventRecord | None = None


EntityInput.model_rebuild()
StatusUpdate.model_rebuild()
ValidationReport.model_rebuild()
AdapterSyncResult.model_rebuild()
