"""RoleBasedGroupScalingAdapter: a scale subresource for one role of a RoleBasedGroup, so an HPA
(or `kubectl scale`) can drive that role's replicas."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

from rbg_flows.api.common import API_VERSION, KubeModel, KubeTime, NonNegativeInt, ObjectMeta

KIND: Final = "RoleBasedGroupScalingAdapter"

AdapterPhase = Literal["NotBound", "Bound"]


class ScaleTargetRef(KubeModel):
    """The role this adapter scales."""

    name: Annotated[str, Field(min_length=1)]
    """Name of the RoleBasedGroup."""
    role: Annotated[str, Field(min_length=1)]
    """Name of the role."""


class RoleBasedGroupScalingAdapterSpec(KubeModel):
    """Desired state of a RoleBasedGroupScalingAdapter."""

    replicas: NonNegativeInt | None = None
    """Desired replicas of the role; unset adopts the role's current replicas."""
    scale_target_ref: ScaleTargetRef
    """The role to scale."""


class RoleBasedGroupScalingAdapterStatus(KubeModel):
    """Observed state of a RoleBasedGroupScalingAdapter."""

    phase: AdapterPhase | None = None
    """Bound once the target role exists and follows this adapter."""
    replicas: NonNegativeInt | None = None
    """Current replicas of the role."""
    ready_replicas: NonNegativeInt | None = None
    """Ready replicas of the role."""
    selector: str | None = None
    """Label selector of the role's pods, for the HPA."""
    last_scale_time: KubeTime | None = None
    """When the role's replicas were last changed through this adapter."""


class RoleBasedGroupScalingAdapter(KubeModel):
    """Scales one role of a RoleBasedGroup through the scale subresource."""

    api_version: Literal["workloads.x-k8s.io/v1alpha1"] = API_VERSION
    kind: Literal["RoleBasedGroupScalingAdapter"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoleBasedGroupScalingAdapterSpec
    """Desired state."""
    status: RoleBasedGroupScalingAdapterStatus | None = None
    """Observed state, written by the orchestrator."""
