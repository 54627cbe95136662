"""Gang scheduling of a whole group (`spec.podGroupPolicy`): the object a gang scheduler reads, and
what each pod carries to join it (pure).

Three schedulers read three objects; which ones a group gets depends on what the cluster serves:

- `kubeScheduling`: the scheduler-plugins coscheduling PodGroup (`scheduling.x-k8s.io/v1alpha1`) when
  its CRD is served, and Kubernetes' own Workload (`scheduling.k8s.io/v1alpha1`, v1.35 alpha, feature
  gate GenericWorkload) when that is served. Pods always carry the coscheduling labels (inert without
  that scheduler) and, with the Workload API, `spec.workloadRef`.
- `volcanoScheduling`: the Volcano PodGroup (`scheduling.volcano.sh/v1beta1`); pods carry its group
  annotation and `schedulerName: volcano`.

Every gang counts all pods of the group (minMember / minCount): a group is placed whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rbg_flows.api import RoleBasedGroup
from rbg_flows.api.common import GROUP
from rbg_flows.api.rbg import KIND, PodGroupPolicy
from rbg_flows.api.validation import FieldError
from rbg_flows.manifests.labels import group_labels, identity, object_meta
from rbg_flows.manifests.podtemplate import pod_templates

SCHEDULER_PLUGINS_API: Final = "scheduling.x-k8s.io/v1alpha1"
VOLCANO_API: Final = "scheduling.volcano.sh/v1beta1"
WORKLOAD_API: Final = "scheduling.k8s.io/v1alpha1"
# The coscheduling plugin reads the first; Koordinator and Alibaba's ACK read the second.
POD_GROUP_LABEL: Final = "scheduling.x-k8s.io/pod-group"
POD_GROUP_LABEL_SIGS: Final = "pod-group.scheduling.sigs.k8s.io/name"
VOLCANO_GROUP_ANNOTATION: Final = "scheduling.k8s.io/group-name"
VOLCANO_SCHEDULER: Final = "volcano"
# The one pod group of a group's Workload (a DNS label; the Workload itself carries the group's name).
WORKLOAD_POD_GROUP: Final = "group"
POLICY_PATH: Final = "spec.podGroupPolicy"


@dataclass(frozen=True)
class ServedGangApis:
    """Which gang objects the cluster serves (read from API discovery by the caller)."""

    scheduler_plugins: bool = False
    volcano: bool = False
    workload: bool = False


def gang_size(rbg: RoleBasedGroup) -> int:
    """Every pod of the group: what must fit at once."""
    return sum(r.replicas * r.pods_per_instance for r in rbg.spec.roles)


def gang_problems(policy: PodGroupPolicy | None, served: ServedGangApis) -> list[FieldError]:
    """Why this cluster cannot gang-schedule the group as asked (nothing is created then): the group
    would otherwise start half-placed, which is what the policy exists to prevent."""
    if policy is None:
        return []  # (both schedulers at once is a spec error, reported by validation)
    if policy.kube_scheduling is not None and not (served.scheduler_plugins or served.workload):
        return [
            FieldError(
                path=f"{POLICY_PATH}.kubeScheduling",
                message="this cluster serves neither the scheduler-plugins PodGroup "
                f"({SCHEDULER_PLUGINS_API}, install deploy/gang/) nor Kubernetes' Workload API "
                f"({WORKLOAD_API}, v1.35+ with the GenericWorkload feature gate)",
            )
        ]
    if policy.volcano_scheduling is not None and not served.volcano:
        return [
            FieldError(
                path=f"{POLICY_PATH}.volcanoScheduling",
                message=f"this cluster does not serve the Volcano PodGroup ({VOLCANO_API}): install Volcano",
            )
        ]
    return []


def gang_objects(rbg: RoleBasedGroup, served: ServedGangApis) -> list[dict[str, Any]]:
    """The gang objects the group owns on this cluster, each named after the group (none without a
    policy). Call only when `gang_problems` is empty."""
    policy = rbg.spec.pod_group_policy
    if policy is None:
        return []
    _, name = identity(rbg)
    meta = object_meta(rbg, name, group_labels(rbg))
    size = gang_size(rbg)
    if size == 0:
        return []  # a group scaled to zero has no gang to wait for (and 0 is not a valid minimum)
    out: list[dict[str, Any]] = []
    if policy.kube_scheduling is not None:
        if served.scheduler_plugins:
            timeout = policy.kube_scheduling.schedule_timeout_seconds
            spec: dict[str, Any] = {"minMember": size, "scheduleTimeoutSeconds": timeout}
            out.append(
                {"apiVersion": SCHEDULER_PLUGINS_API, "kind": "PodGroup", "metadata": meta, "spec": spec}
            )
        if served.workload:
            out.append(
                {
                    "apiVersion": WORKLOAD_API,
                    "kind": "Workload",
                    "metadata": meta,
                    "spec": {
                        "controllerRef": {"apiGroup": GROUP, "kind": KIND, "name": name},
                        "podGroups": [{"name": WORKLOAD_POD_GROUP, "policy": {"gang": {"minCount": size}}}],
                    },
                }
            )
    elif policy.volcano_scheduling is not None and served.volcano:
        volcano = policy.volcano_scheduling
        spec = {"minMember": size}
        if volcano.queue:
            spec["queue"] = volcano.queue
        if volcano.priority_class_name:
            spec["priorityClassName"] = volcano.priority_class_name
        out.append({"apiVersion": VOLCANO_API, "kind": "PodGroup", "metadata": meta, "spec": spec})
    return out


def join_gang(workload: dict[str, Any], rbg: RoleBasedGroup, served: ServedGangApis) -> dict[str, Any]:
    """`workload` (edited in place) with every pod template enrolled in the group's gang."""
    policy = rbg.spec.pod_group_policy
    if policy is None:
        return workload
    _, name = identity(rbg)
    for template in pod_templates(workload):
        meta = template.setdefault("metadata", {})
        spec = template.setdefault("spec", {})
        if policy.kube_scheduling is not None:
            meta["labels"] = {**(meta.get("labels") or {}), POD_GROUP_LABEL: name, POD_GROUP_LABEL_SIGS: name}
            if served.workload:
                spec["workloadRef"] = {"name": name, "podGroup": WORKLOAD_POD_GROUP}
        elif policy.volcano_scheduling is not None:
            meta["annotations"] = {**(meta.get("annotations") or {}), VOLCANO_GROUP_ANNOTATION: name}
            spec["schedulerName"] = VOLCANO_SCHEDULER
    return workload
