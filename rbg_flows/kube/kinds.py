"""Where each kind rbg_flows manages lives in the API (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from rbg_flows.api import DEPLOYMENT, LEADERWORKERSET, STATEFULSET
from rbg_flows.api.common import API_VERSION, API_VERSION_V1ALPHA2
from rbg_flows.api.keys import GROUP_NAME_LABEL
from rbg_flows.manifests.gang import SCHEDULER_PLUGINS_API, VOLCANO_API, WORKLOAD_API


@dataclass(frozen=True)
class WorkloadKind:
    key: str
    label: str  # for activity summaries: "apply prefill StatefulSet"
    group_version: str
    plural: str
    # What the watch cache lists and watches of the kind: what we made (labelled with the group's name),
    # or every object (None: the groups themselves, which carry no label of ours).
    selector: str | None = GROUP_NAME_LABEL
    cluster_scoped: bool = False  # no namespace in its paths (the namespace argument is ignored)

    def collection(self, namespace: str) -> str:
        prefix = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.cluster_scoped:
            return f"{prefix}/{self.plural}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


KINDS: dict[str, WorkloadKind] = {
    STATEFULSET: WorkloadKind(STATEFULSET, "StatefulSet", "apps/v1", "statefulsets"),
    DEPLOYMENT: WorkloadKind(DEPLOYMENT, "Deployment", "apps/v1", "deployments"),
    LEADERWORKERSET: WorkloadKind(
        LEADERWORKERSET, "LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", "leaderworkersets"
    ),
}
SERVICE = WorkloadKind("v1/Service", "Service", "v1", "services")
CONFIGMAP = WorkloadKind("v1/ConfigMap", "ConfigMap", "v1", "configmaps")
LWS_API = "/apis/leaderworkerset.x-k8s.io/v1"
PODS = WorkloadKind("v1/Pod", "Pod", "v1", "pods")
# Read in the stored version (v1alpha2) and converted in-process (api.to_internal): the orchestrator's own
# reads and status writes never go through the conversion webhook, so they go on if it is down.
GROUPS = WorkloadKind(
    "workloads.x-k8s.io/RoleBasedGroup",
    "RoleBasedGroup",
    API_VERSION_V1ALPHA2,
    "rolebasedgroups",
    selector=None,
)
PROFILES = WorkloadKind(
    "workloads.x-k8s.io/ClusterEngineRuntimeProfile",
    "ClusterEngineRuntimeProfile",
    API_VERSION,
    "clusterengineruntimeprofiles",
    selector=None,
    cluster_scoped=True,
)
SETS = WorkloadKind(
    "workloads.x-k8s.io/RoleBasedGroupSet",
    "RoleBasedGroupSet",
    API_VERSION_V1ALPHA2,
    "rolebasedgroupsets",
    selector=None,
)
# Gang scheduling objects (manifests.gang), by the ServedGangApis field that says the cluster serves them.
GANG_KINDS: dict[str, WorkloadKind] = {
    "scheduler_plugins": WorkloadKind("scheduler-plugins", "PodGroup", SCHEDULER_PLUGINS_API, "podgroups"),
    "volcano": WorkloadKind("volcano", "PodGroup", VOLCANO_API, "podgroups"),
    "workload": WorkloadKind("workload", "Workload", WORKLOAD_API, "workloads"),
}
