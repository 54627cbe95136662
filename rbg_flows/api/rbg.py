"""RoleBasedGroup (workloads.x-k8s.io/v1alpha1): spec, status and the small accessors the
orchestrator needs. Field names and JSON names follow RBG v0.4-v0.6; (ext) marks our extensions.

This is also the orchestrator's one internal form: a v1alpha2 object is converted to it first
(`conversion.to_internal`). Sub-models that v1alpha2 has unchanged are defined here once and used by
`v1alpha2.py` too; the few v1alpha2-only fields are back-ported here (marked so) to keep conversion
lossless without annotations."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field

from rbg_flows.api.common import (
    API_VERSION,
    LIST_SET,
    Condition,
    DnsLabel,
    FreeForm,
    IntOrPercent,
    IntOrPercentUpTo100,
    IntOrString,
    KubeModel,
    NonNegativeInt,
    ObjectMeta,
    list_map,
)

KIND: Final = "RoleBasedGroup"

# Workloads are keyed "<apiVersion>/<kind>" as RBG does.
STATEFULSET: Final = "apps/v1/StatefulSet"
DEPLOYMENT: Final = "apps/v1/Deployment"
LEADERWORKERSET: Final = "leaderworkerset.x-k8s.io/v1/LeaderWorkerSet"
SERVED_WORKLOADS: Final = (STATEFULSET, DEPLOYMENT, LEADERWORKERSET)
# The reference's v1alpha2 default workload; not served here (see docs/api.md, Versions).
ROLEINSTANCESET: Final = "workloads.x-k8s.io/v1alpha2/RoleInstanceSet"

RestartPolicy = Literal["None", "RecreateRBGOnPodRestart", "RecreateRoleInstanceOnPodRestart"]
PodManagementPolicy = Literal["OrderedReady", "Parallel"]
SharedServiceSelection = Literal["All", "LeaderOnly"]
Phase = Literal[
    "Pending", "Deploying", "Ready", "Upgrading", "Scaling", "Recovering", "Paused", "Degraded", "Failed"
]
ConditionType = Literal[
    "Ready", "Progressing", "RollingUpdateInProgress", "RestartInProgress", "Paused", "InvalidSpec"
]
PlacementPolicy = Literal["None", "Preferred", "Required"]
PlacementLevel = Literal["nvlink", "pcie", "rdma", "zone"]
PlacementTier = Literal["nvlink", "pcie", "rdma", "zone", "none"]


def defaulted_object(model: type[KubeModel]) -> Any:
    # `default: {}` in the CRD lets the API server fill the nested defaults, exactly as the
    # default_factory does here, so the stored object and the parsed model agree.
    return Field(default_factory=model, json_schema_extra={"default": {}})


class WorkloadSpec(KubeModel):
    """The kind of workload that runs a role."""

    api_version: str = "apps/v1"
    """API version of the workload: apps/v1 or leaderworkerset.x-k8s.io/v1."""
    kind: str = "StatefulSet"
    """StatefulSet, Deployment or LeaderWorkerSet."""

    @property
    def key(self) -> str:
        """ "<apiVersion>/<kind>", e.g. apps/v1/StatefulSet."""
        return f"{self.api_version}/{self.kind}"


class TemplateRef(KubeModel):
    """Reference to an entry of spec.roleTemplates."""

    name: DnsLabel
    """Name of the role template."""


class RoleTemplate(KubeModel):
    """A pod template that roles can share through templateRef."""

    name: DnsLabel
    """Unique name of the template."""
    template: FreeForm
    """A PodTemplateSpec."""


class InPlaceUpdateStrategy(KubeModel):
    """In-place update tuning of RBG's InstanceSet workload (accepted for compatibility; not served)."""

    grace_period_seconds: NonNegativeInt | None = None
    """Seconds between marking a pod not-ready and updating it in place."""


class RollingUpdate(KubeModel):
    """Parameters of a rolling update of one role."""

    # Both versions' spellings in both versions (v1alpha1 Recreate, v1alpha2 RecreatePod, InPlaceOnly):
    # conversion then passes the value through unchanged.
    type: Literal["Recreate", "RecreatePod", "InPlaceIfPossible", "InPlaceOnly"] | None = None
    """InstanceSet/RoleInstanceSet update type in RBG (accepted for compatibility; not served)."""
    partition: IntOrPercent = 0
    """Instances with an ordinal below this (a count, or a percentage of replicas rounded up)
    keep the old revision."""
    max_unavailable: IntOrPercent = 1
    """Instances that may be unavailable during the update: a count or a percentage of replicas
    (rounded down). Cannot be 0 when maxSurge is 0."""
    max_surge: IntOrPercent = 0
    """Instances that may be created above replicas during the update: a count or a percentage of
    replicas (rounded up)."""
    paused: bool | None = None
    """InstanceSet pause switch in RBG (accepted for compatibility; not served)."""
    in_place_update_strategy: InPlaceUpdateStrategy | None = None
    """InstanceSet in-place update tuning in RBG (accepted for compatibility; not served)."""


class RolloutStrategy(KubeModel):
    """How a role's instances move to a new revision."""

    type: Literal["RollingUpdate"] = "RollingUpdate"
    """Only RollingUpdate exists."""
    rolling_update: RollingUpdate = defaulted_object(RollingUpdate)
    """Rolling update parameters."""


class LeaderWorkerSetTemplate(KubeModel):
    """Shape of a LeaderWorkerSet role's instances."""

    size: Annotated[int, Field(ge=1)] = 1
    """Pods per instance, the leader included."""
    patch_leader_template: FreeForm | None = None
    """Strategic-merge patch applied to the role template for the leader pod."""
    patch_worker_template: FreeForm | None = None
    """Strategic-merge patch applied to the role template for worker pods."""
    shared_service_selection: SharedServiceSelection | None = None
    """Back-ported from v1alpha2 leaderWorkerPattern: which pods the role's headless Service selects
    (LeaderOnly is for RBG's RoleInstanceSet; accepted for compatibility; not served)."""


class RestartPolicyConfig(KubeModel):
    """What a pod failure recreates, and the backoff between recreations (v1alpha2's field; in
    v1alpha1 an extension)."""

    type: RestartPolicy | None = None
    """What a pod failure recreates; takes precedence over restartPolicy. Unset: restartPolicy, else
    RecreateRoleInstanceOnPodRestart for LeaderWorkerSet roles and None otherwise."""
    base_delay_seconds: NonNegativeInt = 30
    """Delay before the first recreation; doubles on each one that follows."""
    max_delay_seconds: NonNegativeInt = 600
    """Upper bound of the delay."""
    max_restarts: NonNegativeInt | None = None
    """Recreations allowed within the stability window before the group is marked Failed; unset
    means no limit."""


class ServicePort(KubeModel):
    """A port of the role, listed in the discovery file."""

    name: str | None = None
    """Port name; becomes the key in the discovery file (lower case, '-' replaced by '_')."""
    port: Annotated[int, Field(ge=1, le=65535)]
    """Port number."""
    target_port: IntOrString | None = None
    """Container port number or name."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """IP protocol."""
    app_protocol: str | None = None
    """Application protocol of the port."""
    node_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """Node port, for NodePort and LoadBalancer Services."""


class EngineRuntime(KubeModel):
    """Sidecars taken from a ClusterEngineRuntimeProfile."""

    profile_name: Annotated[str, Field(min_length=1)]
    """Name of the ClusterEngineRuntimeProfile."""
    inject_containers: list[str] = Field(default_factory=list)
    """Containers of the role that the profile is injected into."""
    containers: list[FreeForm] = Field(default_factory=list)
    """Overrides (command, args) of the profile's containers."""


class ScalingAdapterSpec(KubeModel):
    """Whether the role gets a RoleBasedGroupScalingAdapter."""

    enable: bool = False
    """Create a RoleBasedGroupScalingAdapter <rbg>-<role> owned by the group."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Back-ported from v1alpha2: extra labels of the created adapter (the group and role labels win)."""


class InstanceComponent(KubeModel):
    """A component of RBG's InstanceSet workload (accepted for compatibility; not served)."""

    name: Annotated[str, Field(min_length=1)]
    """Component name."""
    size: NonNegativeInt | None = None
    """Pods of this component per instance."""
    service_name: str | None = None
    """Service governing the component's pods."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Back-ported from v1alpha2: labels merged into the component's pods."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Back-ported from v1alpha2: annotations merged into the component's pods."""
    template: FreeForm
    """A PodTemplateSpec."""


class RoleSpec(KubeModel):
    """One role of the group: its workload, pod template and lifecycle."""

    name: DnsLabel
    """Role name, unique in the group; the workload is named <rbg>-<role>."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels copied to the workload and its pod template."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations copied to the workload and its pod template."""
    replicas: NonNegativeInt = 1
    """Instances of the role: pods for StatefulSet and Deployment, leader+worker groups for
    LeaderWorkerSet."""
    workload: WorkloadSpec = defaulted_object(WorkloadSpec)
    """Workload kind; defaults to apps/v1 StatefulSet."""
    template: FreeForm | None = None
    """The role's PodTemplateSpec. Exactly one of template and templateRef."""
    template_ref: TemplateRef | None = None
    """Use a template of spec.roleTemplates instead of an inline one."""
    template_patch: FreeForm | None = None
    """Strategic-merge patch applied on top of the referenced template."""
    leader_worker_set: LeaderWorkerSetTemplate | None = None
    """Instance size and leader/worker patches for LeaderWorkerSet roles."""
    dependencies: list[str] = Field(default_factory=list)
    """Roles that must be Ready before this role's workload is created."""
    rollout_strategy: RolloutStrategy = defaulted_object(RolloutStrategy)
    """Rolling update parameters of this role."""
    restart_policy: RestartPolicy | None = None
    """What a pod failure recreates (restartPolicyConfig.type wins); defaults to
    RecreateRoleInstanceOnPodRestart for LeaderWorkerSet roles and None otherwise."""
    restart_policy_config: RestartPolicyConfig | None = None
    """Restart policy type and the backoff between recreations (in v1alpha1 an extension)."""
    service_ports: list[ServicePort] = Field(default_factory=list)
    """Ports listed for this role in the discovery file."""
    engine_runtimes: list[EngineRuntime] = Field(default_factory=list)
    """Engine runtime profiles whose sidecars are injected."""
    scaling_adapter: ScalingAdapterSpec | None = None
    """Auto-create a RoleBasedGroupScalingAdapter for this role."""
    min_ready_seconds: NonNegativeInt = 0
    """Seconds a new pod must be ready before it counts as available."""
    components: list[InstanceComponent] = Field(default_factory=list)
    """Components of RBG's InstanceSet workload (accepted for compatibility; not served)."""
    pod_management_policy: PodManagementPolicy | None = None
    """Back-ported from v1alpha2: how RBG's RoleInstanceSet creates instances (accepted for
    compatibility; not served: StatefulSets are always Parallel)."""

    @property
    def is_leader_worker_set(self) -> bool:
        return self.workload.key == LEADERWORKERSET

    @property
    def effective_restart_policy(self) -> RestartPolicy:
        # The reference's precedence: restartPolicyConfig.type, then the older restartPolicy, then
        # the workload's default.
        if self.restart_policy_config is not None and self.restart_policy_config.type is not None:
            return self.restart_policy_config.type
        if self.restart_policy is not None:
            return self.restart_policy
        return "RecreateRoleInstanceOnPodRestart" if self.is_leader_worker_set else "None"

    @property
    def effective_restart_policy_config(self) -> RestartPolicyConfig:
        return self.restart_policy_config or RestartPolicyConfig()

    @property
    def pods_per_instance(self) -> int:
        if self.is_leader_worker_set and self.leader_worker_set is not None:
            return self.leader_worker_set.size
        return 1

    @property
    def scaling_adapter_enabled(self) -> bool:
        return self.scaling_adapter is not None and self.scaling_adapter.enable


class KubeScheduling(KubeModel):
    """Gang scheduling with the scheduler-plugins coscheduling PodGroup."""

    schedule_timeout_seconds: NonNegativeInt = 60
    """How long the scheduler waits for the whole group to fit."""


class VolcanoScheduling(KubeModel):
    """Gang scheduling with a Volcano PodGroup."""

    queue: str | None = None
    """Volcano queue of the PodGroup."""
    priority_class_name: str | None = None
    """PriorityClass of the PodGroup."""


class PodGroupPolicy(KubeModel):
    """Gang scheduling of the whole group; exactly one scheduler."""

    kube_scheduling: KubeScheduling | None = None
    """Use the scheduler-plugins coscheduling plugin."""
    volcano_scheduling: VolcanoScheduling | None = None
    """Use Volcano."""


class CoordinationRollingUpdate(KubeModel):
    """Lock-step rolling update of the roles of a coordination rule."""

    max_skew: IntOrPercentUpTo100 | None = None
    """Largest allowed difference between the roles' updated fractions."""
    partition: IntOrPercentUpTo100 | None = None
    """Overrides the roles' partition."""
    max_unavailable: IntOrPercentUpTo100 | None = None
    """Overrides the roles' maxUnavailable."""


class CoordinationScaling(KubeModel):
    """Ratio-preserving scaling of the roles of a coordination rule."""

    max_skew: IntOrPercentUpTo100 | None = None
    """Largest allowed difference between the roles' scaling progress."""
    progression: Literal["OrderScheduled", "OrderReady"] = "OrderScheduled"
    """Wait for each batch to be scheduled (OrderScheduled) or ready (OrderReady) before the next."""


class CoordinationStrategy(KubeModel):
    """What a coordination rule keeps in step."""

    rolling_update: CoordinationRollingUpdate | None = None
    """Rolling updates."""
    scaling: CoordinationScaling | None = None
    """Scaling."""


class Coordination(KubeModel):
    """Cross-role lock-step rule."""

    name: Annotated[str, Field(min_length=1)]
    """Unique name of the rule."""
    roles: Annotated[list[str], Field(min_length=1)]
    """Roles the rule binds together."""
    strategy: CoordinationStrategy | None = None
    """What is kept in step."""


RolePair = Annotated[list[str], Field(min_length=2, max_length=2)]


class PlacementSpec(KubeModel):
    """(ext) Topology-aware placement of the group's pods."""

    policy: PlacementPolicy = "Preferred"
    """Required fails when nothing fits at level; Preferred degrades tier by tier; None disables."""
    level: PlacementLevel = "nvlink"
    """Best interconnect tier asked for: nvlink, pcie, rdma or zone."""
    pairs: list[RolePair] = Field(default_factory=list)
    """Role pairs whose pods must share the interconnect; all roles when empty."""
    exclusive: bool = False
    """Own the chosen domain: no pods of other groups in it."""


class RoleBasedGroupSpec(KubeModel):
    """Desired state of a RoleBasedGroup."""

    roles: list[RoleSpec] = Field(min_length=1, json_schema_extra=list_map("name"))
    """The roles of the group."""
    role_templates: list[RoleTemplate] = Field(default_factory=list, json_schema_extra=list_map("name"))
    """Pod templates shared by roles through templateRef."""
    pod_group_policy: PodGroupPolicy | None = None
    """Gang scheduling of the whole group."""
    coordination: list[Coordination] = Field(default_factory=list, json_schema_extra=list_map("name"))
    """Cross-role lock-step rollout and scaling rules."""
    rollout_order: list[str] = Field(default_factory=list, json_schema_extra=LIST_SET)
    """(ext) Order in which roles outside coordination rules are upgraded (rollback: reverse)."""
    placement: PlacementSpec | None = None
    """(ext) Topology-aware placement."""

    def role(self, name: str) -> RoleSpec:
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(name)

    def role_template(self, name: str) -> RoleTemplate:
        for template in self.role_templates:
            if template.name == name:
                return template
        raise KeyError(name)

    @property
    def role_names(self) -> list[str]:
        return [role.name for role in self.roles]


class RoleStatus(KubeModel):
    """Observed state of one role."""

    name: str
    """Role name."""
    replicas: NonNegativeInt = 0
    """Desired instances."""
    ready_replicas: NonNegativeInt = 0
    """Instances with all pods ready."""
    updated_replicas: NonNegativeInt = 0
    """Instances at the update revision."""


class PlacementStatus(KubeModel):
    """(ext) The placement chosen for the group; free-form beyond the fields below."""

    # Placement evolves faster than this API; unknown keys are kept rather than refused.
    model_config = ConfigDict(extra="allow")

    policy: PlacementPolicy | None = None
    """Policy the choice was made under."""
    level: PlacementLevel | None = None
    """Tier asked for."""
    tier: PlacementTier | None = None
    """Tier obtained."""
    score: float | None = None
    """Score of the chosen domain; higher is better."""
    domains: dict[str, str] = Field(default_factory=dict)
    """Chosen topology domain per role."""
    message: str | None = None
    """Why this choice, or why nothing fits."""


class RoleBasedGroupStatus(KubeModel):
    """Observed state of a RoleBasedGroup."""

    observed_generation: NonNegativeInt | None = None
    """Generation whose operation has settled."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """Ready, Progressing, RollingUpdateInProgress, RestartInProgress, Paused and InvalidSpec."""
    role_statuses: list[RoleStatus] = Field(default_factory=list, json_schema_extra=list_map("name"))
    """Per-role replica counts."""
    current_revision: str | None = None
    """(ext) ControllerRevision every role has fully reached."""
    update_revision: str | None = None
    """(ext) ControllerRevision being rolled out."""
    phase: Phase | None = None
    """(ext) Pending, Deploying, Ready, Upgrading, Scaling, Recovering, Paused, Degraded or Failed."""
    placement: PlacementStatus | None = None
    """(ext) Chosen topology domains and their score."""
    workflow_id: str | None = None
    """(ext) Temporal workflow orchestrating the group."""

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


class RoleBasedGroup(KubeModel):
    """A group of roles deployed, upgraded, scaled and recovered as one unit."""

    api_version: Literal["workloads.x-k8s.io/v1alpha1"] = API_VERSION
    kind: Literal["RoleBasedGroup"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoleBasedGroupSpec
    """Desired state."""
    status: RoleBasedGroupStatus | None = None
    """Observed state, written by the orchestrator."""
