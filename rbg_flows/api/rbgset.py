"""RoleBasedGroupSet: N identical RoleBasedGroups <set>-0 ... <set>-(N-1)."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from rbg_flows.api.common import API_VERSION, Condition, KubeModel, NonNegativeInt, ObjectMeta, list_map
from rbg_flows.api.rbg import RoleBasedGroupSpec

KIND: Final = "RoleBasedGroupSet"


class RoleBasedGroupSetSpec(KubeModel):
    """Desired state of a RoleBasedGroupSet."""

    replicas: NonNegativeInt = 1
    """Number of RoleBasedGroups; scaling down removes the highest indices first."""
    template: RoleBasedGroupSpec
    """Spec of every RoleBasedGroup of the set."""


class RoleBasedGroupSetStatus(KubeModel):
    """Observed state of a RoleBasedGroupSet."""

    observed_generation: NonNegativeInt | None = None
    """Generation whose changes have been applied to the children."""
    replicas: NonNegativeInt = 0
    """RoleBasedGroups that exist."""
    ready_replicas: NonNegativeInt = 0
    """RoleBasedGroups whose Ready condition is True."""
    selector: str | None = None
    """(ext) Label selector of the set's RoleBasedGroups, one object per group: the scale subresource's,
    so an HPA on the set counts groups, not pods."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """Ready, InvalidSpec."""


class RoleBasedGroupSet(KubeModel):
    """A scalable set of identical RoleBasedGroups."""

    api_version: Literal["workloads.x-k8s.io/v1alpha1"] = API_VERSION
    kind: Literal["RoleBasedGroupSet"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RoleBasedGroupSetSpec
    """Desired state."""
    status: RoleBasedGroupSetStatus | None = None
    """Observed state, written by the orchestrator."""


def child_name(set_name: str, index: int) -> str:
    """Name of the set's RoleBasedGroup with this index."""
    return f"{set_name}-{index}"
