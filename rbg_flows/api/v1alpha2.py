"""The workloads.x-k8s.io/v1alpha2 kinds, as the reference v0.8 serves them plus our (ext) fields.

What changed from v1alpha1: a role's workload kind moved to the role annotation
`rbg.workloads.x-k8s.io/role-workload-type`, its pod template into one of three patterns
(`standalonePattern`, `leaderWorkerPattern`, `customComponentsPattern`), the template patch into
`templateRef.patch`, gang scheduling and exclusive topology into group annotations, and a set's
template under `groupTemplate`. Everything else is the v1alpha1 sub-model, imported from `rbg.py` (one
source). The orchestrator never reads these models: it converts to v1alpha1 first
(`conversion.to_internal`); they exist for the CRD schema and for validation.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

from rbg_flows.api.common import (
    API_VERSION_V1ALPHA2,
    LIST_SET,
    DnsLabel,
    FreeForm,
    KubeModel,
    NonNegativeInt,
    ObjectMeta,
    list_map,
)
from rbg_flows.api.keys import ROLE_WORKLOAD_TYPE_ANNOTATION
from rbg_flows.api.rbg import (
    Coordination,
    EngineRuntime,
    InstanceComponent,
    PlacementSpec,
    PodManagementPolicy,
    RestartPolicy,
    RestartPolicyConfig,
    RoleBasedGroupStatus,
    RoleTemplate,
    RolloutStrategy,
    ScalingAdapterSpec,
    ServicePort,
    SharedServiceSelection,
    defaulted_object,
)
from rbg_flows.api.rbgset import RoleBasedGroupSetStatus
from rbg_flows.api.scaling_adapter import (
    RoleBasedGroupScalingAdapterSpec,
    RoleBasedGroupScalingAdapterStatus,
)

VERSION: Final = "v1alpha2"


class TemplateRef(KubeModel):
    """Reference to an entry of spec.roleTemplates, with a patch on top."""

    name: DnsLabel
    """Name of the role template."""
    patch: FreeForm | None = None
    """Strategic-merge patch applied on top of the referenced template."""


class TemplateSource(KubeModel):
    """Where a pattern's pod template comes from: inline or a role template."""

    template: FreeForm | None = None
    """The PodTemplateSpec. Exactly one of template and templateRef."""
    template_ref: TemplateRef | None = None
    """Use a template of spec.roleTemplates instead of an inline one."""


class RestartFields(KubeModel):
    """The restart policy fields every pattern carries."""

    restart_policy: RestartPolicy | None = None
    """Older spelling of restartPolicyConfig.type, which wins when both are set."""
    restart_policy_config: RestartPolicyConfig | None = None
    """What a pod failure recreates and the backoff between recreations."""


class StandalonePattern(TemplateSource):
    """One pod per instance (StatefulSet or Deployment)."""

    restart_policy: RestartPolicy | None = None
    """(ext) Older spelling of restartPolicyConfig.type. The reference has no restart policy for
    standalone roles; ours keeps v1alpha1's (RecreateRBGOnPodRestart recreates the whole group)."""
    restart_policy_config: RestartPolicyConfig | None = None
    """(ext) What a pod failure recreates and the backoff between recreations; default None."""


class LeaderWorkerPattern(TemplateSource, RestartFields):
    """A leader and size-1 workers per instance (LeaderWorkerSet)."""

    size: Annotated[int, Field(ge=1)] = 1
    """Pods per instance, the leader included."""
    leader_template_patch: FreeForm | None = None
    """Strategic-merge patch applied to the template for the leader pod."""
    worker_template_patch: FreeForm | None = None
    """Strategic-merge patch applied to the template for worker pods."""
    shared_service_selection: SharedServiceSelection | None = None
    """Which pods the headless Service selects (LeaderOnly is for RBG's RoleInstanceSet; accepted for
    compatibility; not served)."""


class CustomComponentsPattern(RestartFields):
    """Components of RBG's RoleInstanceSet (accepted for compatibility; not served)."""

    components: list[InstanceComponent] = Field(default_factory=list)
    """The components of an instance."""


class RoleSpec(KubeModel):
    """One role of the group: its pattern, pod template and lifecycle. The workload kind is the
    annotation rbg.workloads.x-k8s.io/role-workload-type ("<apiVersion>/<kind>"); unset means
    apps/v1/StatefulSet, or leaderworkerset.x-k8s.io/v1/LeaderWorkerSet with leaderWorkerPattern."""

    model_config = KubeModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.standalonePattern) && has(self.leaderWorkerPattern))",
                    "message": "standalonePattern and leaderWorkerPattern are mutually exclusive",
                }
            ]
        }
    }

    name: DnsLabel
    """Role name, unique in the group; the workload is named <rbg>-<role>."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels copied to the workload and its pod template."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations copied to the workload and its pod template (the workload-type annotation is not)."""
    replicas: NonNegativeInt = 1
    """Instances of the role."""
    rollout_strategy: RolloutStrategy = defaulted_object(RolloutStrategy)
    """Rolling update parameters of this role."""
    dependencies: list[str] = Field(default_factory=list)
    """Roles that must be Ready before this role's workload is created."""
    standalone_pattern: StandalonePattern | None = None
    """One pod per instance."""
    leader_worker_pattern: LeaderWorkerPattern | None = None
    """A leader and workers per instance."""
    custom_components_pattern: CustomComponentsPattern | None = None
    """Components of RBG's RoleInstanceSet (accepted for compatibility; not served)."""
    service_ports: list[ServicePort] = Field(default_factory=list)
    """Ports listed for this role in the discovery file."""
    engine_runtimes: list[EngineRuntime] = Field(default_factory=list)
    """Engine runtime profiles whose sidecars are injected."""
    scaling_adapter: ScalingAdapterSpec | None = None
    """Auto-create a RoleBasedGroupScalingAdapter for this role."""
    min_ready_seconds: NonNegativeInt = 0
    """Seconds a new pod must be ready before it counts as available."""
    pod_management_policy: PodManagementPolicy | None = None
    """How RBG's RoleInstanceSet creates instances (accepted for compatibility; not served: unset and
    Parallel mean the same)."""

    @property
    def workload_type(self) -> str | None:
        return self.annotations.get(ROLE_WORKLOAD_TYPE_ANNOTATION)


class RoleBasedGroupSpec(KubeModel):
    """Desired state of a RoleBasedGroup. Gang scheduling and exclusive topology are group
    annotations (rbg.workloads.x-k8s.io/group-gang-scheduling, .../group-exclusive-topology)."""

    roles: list[RoleSpec] = Field(min_length=1, json_schema_extra=list_map("name"))
    """The roles of the group."""
    role_templates: list[RoleTemplate] = Field(default_factory=list, json_schema_extra=list_map("name"))
    """Pod templates shared by roles through templateRef."""
    coordination: list[Coordination] = Field(default_factory=list, json_schema_extra=list_map("name"))
    """(ext) Cross-role lock-step rollout and scaling rules (v1alpha1's field; the reference moved
    them to a CoordinatedPolicy object, which rbg_flows does not serve)."""
    rollout_order: list[str] = Field(default_factory=list, json_schema_extra=LIST_SET)
    """(ext) Order in which roles outside coordination rules are upgraded (rollback: reverse)."""
    placement: PlacementSpec | None = None
    """(ext) Topology-aware placement."""


class RoleBasedGroup(KubeModel):
    """A group of roles deployed, upgraded, scaled and recovered as one unit."""

    api_version: Literal["workloads.x-k8s.io/v1alpha2"] = API_VERSION_V1ALPHA2
    kind: Literal["RoleBasedGroup"] = "RoleBasedGroup"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoleBasedGroupSpec
    """Desired state."""
    status: RoleBasedGroupStatus | None = None
    """Observed state, written by the orchestrator."""


class RoleBasedGroupTemplateSpec(KubeModel):
    """What every RoleBasedGroup of a set is created with."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of every RoleBasedGroup of the set."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of every RoleBasedGroup of the set (gang scheduling among them)."""
    spec: RoleBasedGroupSpec
    """Spec of every RoleBasedGroup of the set."""


class RoleBasedGroupSetSpec(KubeModel):
    """Desired state of a RoleBasedGroupSet."""

    replicas: NonNegativeInt = 1
    """Number of RoleBasedGroups; scaling down removes the highest indices first."""
    group_template: RoleBasedGroupTemplateSpec
    """The RoleBasedGroups of the set."""


class RoleBasedGroupSet(KubeModel):
    """A scalable set of identical RoleBasedGroups."""

    api_version: Literal["workloads.x-k8s.io/v1alpha2"] = API_VERSION_V1ALPHA2
    kind: Literal["RoleBasedGroupSet"] = "RoleBasedGroupSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoleBasedGroupSetSpec
    """Desired state."""
    status: RoleBasedGroupSetStatus | None = None
    """Observed state, written by the orchestrator."""


class RoleBasedGroupScalingAdapter(KubeModel):
    """Scales one role of a RoleBasedGroup through the scale subresource (unchanged from v1alpha1)."""

    api_version: Literal["workloads.x-k8s.io/v1alpha2"] = API_VERSION_V1ALPHA2
    kind: Literal["RoleBasedGroupScalingAdapter"] = "RoleBasedGroupScalingAdapter"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoleBasedGroupScalingAdapterSpec
    """Desired state."""
    status: RoleBasedGroupScalingAdapterStatus | None = None
    """Observed state, written by the orchestrator."""
