"""ClusterEngineRuntimeProfile: cluster-scoped sidecars, init containers and volumes that roles pull
in through `engineRuntimes`. The same shape in v1alpha1 and v1alpha2, as in the reference."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from rbg_flows.api.common import API_VERSION_V1ALPHA2, FreeForm, KubeModel, ObjectMeta

KIND: Final = "ClusterEngineRuntimeProfile"

UpdateStrategy = Literal["NoUpdate", "RollingUpdate"]


class ClusterEngineRuntimeProfileSpec(KubeModel):
    """Desired state of a ClusterEngineRuntimeProfile."""

    init_containers: list[FreeForm] = Field(default_factory=list)
    """Init containers added to the pods of every role that uses the profile (corev1 Container)."""
    containers: list[FreeForm] = Field(default_factory=list)
    """Containers added to the pods of every role that uses the profile (corev1 Container); a role's
    engineRuntimes[].containers override them by name."""
    volumes: list[FreeForm] = Field(default_factory=list)
    """Volumes the profile's containers mount (corev1 Volume)."""
    update_strategy: UpdateStrategy = "NoUpdate"
    """NoUpdate: a change of the profile reaches pods only when they are next created; RollingUpdate:
    it rolls the roles that use it."""


class ClusterEngineRuntimeProfileStatus(KubeModel):
    """Observed state of a ClusterEngineRuntimeProfile (the reference defines no fields)."""


class ClusterEngineRuntimeProfile(KubeModel):
    """Engine runtime sidecars shared by roles across the cluster."""

    # Either served version: the two have the same schema, so one model reads both.
    api_version: Literal["workloads.x-k8s.io/v1alpha1", "workloads.x-k8s.io/v1alpha2"] = API_VERSION_V1ALPHA2
    kind: Literal["ClusterEngineRuntimeProfile"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ClusterEngineRuntimeProfileSpec = Field(default_factory=ClusterEngineRuntimeProfileSpec)
    """Desired state."""
    status: ClusterEngineRuntimeProfileStatus | None = None
    """Observed state (empty)."""
