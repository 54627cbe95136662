"""Label and annotation keys of the contract (api.md), and where a RoleBasedGroup lives in the API.

Users select pods and workloads by these strings, so they stay byte-identical to the contract's, which
are the reference's labels of v0.4-v0.7 (v0.8 added `rbg.workloads.x-k8s.io/group-name`, `role-name`, ...
for its own RoleInstanceSet workloads; they are not written: docs/compatibility.md). Every room
(manifests, the watch cache, the watcher, the CLI) reads them from here.
"""

from __future__ import annotations

from typing import Final

from rbg_flows.api.common import API_VERSION

PREFIX: Final = "rolebasedgroup.workloads.x-k8s.io/"

GROUP_NAME_LABEL: Final = PREFIX + "name"
ROLE_LABEL: Final = PREFIX + "role"
GROUP_UNIQUE_KEY_LABEL: Final = PREFIX + "group-unique-key"
# (ext) On pods of roles that topology-aware placement put in a domain.
PLACED_LABEL: Final = PREFIX + "placed"
ROLE_REVISION_LABEL_PREFIX: Final = PREFIX + "role-revision-hash-"
CONTROLLER_REVISION_HASH_LABEL: Final = PREFIX + "controller-revision-hash"

# On the RoleBasedGroups of a RoleBasedGroupSet: the set's name, the child's index.
SET_PREFIX: Final = "rolebasedgroupset.workloads.x-k8s.io/"
SET_NAME_LABEL: Final = SET_PREFIX + "name"
SET_INDEX_LABEL: Final = SET_PREFIX + "rbg-index"

# Replicas of the role when the workload was last applied. Only on the workload object, never on the
# pod template: scaling must not roll pods.
ROLE_SIZE_ANNOTATION: Final = PREFIX + "role-size"
EXCLUSIVE_TOPOLOGY_ANNOTATION: Final = PREFIX + "exclusive-topology"
DISABLE_EXCLUSIVE_TOPOLOGY_ANNOTATION: Final = PREFIX + "disable-exclusive-topology"

# v1alpha2's group and role annotations (the reference's `rbg.workloads.x-k8s.io/` prefix). Conversion
# maps v1alpha1's spec.podGroupPolicy and exclusive-topology annotation to and from them; the
# orchestrator reads the v1alpha1 form only.
RBG_PREFIX: Final = "rbg.workloads.x-k8s.io/"
GANG_SCHEDULING_ANNOTATION: Final = RBG_PREFIX + "group-gang-scheduling"
GANG_SCHEDULING_TIMEOUT_ANNOTATION: Final = RBG_PREFIX + "group-gang-scheduling-timeout"
GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION: Final = RBG_PREFIX + "group-gang-scheduling-volcano-queue"
GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION: Final = RBG_PREFIX + "group-gang-scheduling-volcano-priority"
GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION: Final = RBG_PREFIX + "group-exclusive-topology"
# On a role (or its pod template): the role is exempt from the group's exclusive topology.
ROLE_DISABLE_EXCLUSIVE_ANNOTATION: Final = RBG_PREFIX + "role-disable-exclusive"
ROLE_WORKLOAD_TYPE_ANNOTATION: Final = RBG_PREFIX + "role-workload-type"
# v0.8's set membership labels (v1alpha2 sets): written beside the v1alpha1 ones, so selectors of either
# version find the set's groups.
GROUPSET_NAME_LABEL: Final = RBG_PREFIX + "groupset-name"
GROUPSET_INDEX_LABEL: Final = RBG_PREFIX + "groupset-index"
# Where conversion keeps what the other version has no field for (docs/api.md, Versions).
CONVERSION_PREFIX: Final = "conversion.workloads.x-k8s.io/"

# Set by the StatefulSet controller on every pod it creates (and so on LeaderWorkerSet pods, which
# are created by StatefulSets); the source of ROLE_INDEX.
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"
# Set by the StatefulSet controller: the revision a pod was made from.
STS_REVISION_LABEL: Final = "controller-revision-hash"

RBG_API: Final = f"/apis/{API_VERSION}"


def rbg_path(namespace: str, name: str) -> str:
    """The URL of one RoleBasedGroup."""
    return f"{RBG_API}/namespaces/{namespace}/rolebasedgroups/{name}"
