"""Gang scheduling objects and pod fields: which objects a cluster gets for which policy, their size
(every pod of the group), how pods join, and the refusal when nothing can gang-schedule."""

from __future__ import annotations

from typing import Any

from rbg_flows.api import RoleBasedGroup
from rbg_flows.manifests.gang import (
    POD_GROUP_LABEL,
    VOLCANO_GROUP_ANNOTATION,
    ServedGangApis,
    gang_objects,
    gang_problems,
    gang_size,
)
from rbg_flows.manifests.workloads import build_workload

ALL = ServedGangApis(scheduler_plugins=True, volcano=True, workload=True)
KUBE = {"kubeScheduling": {"scheduleTimeoutSeconds": 30}}
VOLCANO = {"volcanoScheduling": {"queue": "inference", "priorityClassName": "high"}}


def group(policy: dict[str, Any] | None, prefill: int = 2, lws_size: int = 3) -> RoleBasedGroup:
    template = {"spec": {"containers": [{"name": "c", "image": "engine:1"}]}}
    spec: dict[str, Any] = {
        "roles": [
            {"name": "prefill", "replicas": prefill, "template": template},
            {
                "name": "decode",
                "replicas": 2,
                "workload": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
                "template": template,
                "leaderWorkerSet": {"size": lws_size},
            },
            {
                "name": "router",
                "replicas": 1,
                "workload": {"apiVersion": "apps/v1", "kind": "Deployment"},
                "template": template,
            },
        ]
    }
    if policy is not None:
        spec["podGroupPolicy"] = policy
    return RoleBasedGroup.model_validate(
        {
            "apiVersion": "workloads.x-k8s.io/v1alpha1",
            "kind": "RoleBasedGroup",
            "metadata": {"name": "g", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }
    )


def by_api(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["apiVersion"]: o for o in objs}


def test_the_gang_counts_every_pod_of_every_role() -> None:
    # 2 StatefulSet pods + 2 LWS instances of 3 pods + 1 router
    assert gang_size(group(KUBE)) == 2 + 2 * 3 + 1
    assert gang_size(group(KUBE, prefill=5, lws_size=1)) == 5 + 2 + 1


def test_kube_scheduling_makes_a_podgroup_and_a_workload_where_each_is_served() -> None:
    objs = by_api(gang_objects(group(KUBE), ALL))
    assert set(objs) == {"scheduling.x-k8s.io/v1alpha1", "scheduling.k8s.io/v1alpha1"}
    pg = objs["scheduling.x-k8s.io/v1alpha1"]
    assert pg["spec"] == {"minMember": 9, "scheduleTimeoutSeconds": 30}
    assert pg["metadata"]["name"] == "g" and pg["metadata"]["ownerReferences"][0]["uid"] == "u1"
    wl = objs["scheduling.k8s.io/v1alpha1"]
    assert wl["spec"]["podGroups"] == [{"name": "group", "policy": {"gang": {"minCount": 9}}}]
    assert wl["spec"]["controllerRef"] == {
        "apiGroup": "workloads.x-k8s.io",
        "kind": "RoleBasedGroup",
        "name": "g",
    }
    only_native = gang_objects(group(KUBE), ServedGangApis(workload=True))
    assert [o["kind"] for o in only_native] == ["Workload"]


def test_volcano_makes_its_podgroup_with_queue_and_priority() -> None:
    (pg,) = gang_objects(group(VOLCANO), ALL)
    assert pg["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    assert pg["spec"] == {"minMember": 9, "queue": "inference", "priorityClassName": "high"}


def test_no_policy_or_no_pods_means_no_gang_object() -> None:
    assert gang_objects(group(None), ALL) == []
    empty = group(KUBE, prefill=0)
    empty.spec.roles = [r for r in empty.spec.roles if r.name == "prefill"]
    assert gang_objects(empty, ALL) == []


def test_a_cluster_that_cannot_gang_schedule_is_named_in_the_refusal() -> None:
    (kube,) = gang_problems(group(KUBE).spec.pod_group_policy, ServedGangApis(volcano=True))
    assert kube.path == "spec.podGroupPolicy.kubeScheduling"
    assert "scheduler-plugins" in kube.message and "GenericWorkload" in kube.message
    (volcano,) = gang_problems(group(VOLCANO).spec.pod_group_policy, ServedGangApis(workload=True))
    assert volcano.path == "spec.podGroupPolicy.volcanoScheduling"
    assert gang_problems(group(KUBE).spec.pod_group_policy, ServedGangApis(workload=True)) == []
    assert gang_problems(None, ServedGangApis()) == []


def _templates(body: dict[str, Any]) -> list[dict[str, Any]]:
    spec = body["spec"]
    if "leaderWorkerTemplate" in spec:
        lwt = spec["leaderWorkerTemplate"]
        return [t for t in (lwt.get("leaderTemplate"), lwt["workerTemplate"]) if t]
    return [spec["template"]]


def test_every_pod_template_joins_the_gang_the_cluster_runs() -> None:
    rbg = group(KUBE)
    for role in rbg.spec.roles:
        native = build_workload(rbg, role, gang=ALL)
        plain = build_workload(rbg, role, gang=ServedGangApis(scheduler_plugins=True))
        for t in _templates(native):
            assert t["metadata"]["labels"][POD_GROUP_LABEL] == "g"
            assert t["spec"]["workloadRef"] == {"name": "g", "podGroup": "group"}
        for t in _templates(plain):
            assert t["metadata"]["labels"][POD_GROUP_LABEL] == "g"
            assert "workloadRef" not in t["spec"]  # a server without the Workload API would refuse it
    rbg = group(VOLCANO)
    for role in rbg.spec.roles:
        for t in _templates(build_workload(rbg, role, gang=ALL)):
            assert t["metadata"]["annotations"][VOLCANO_GROUP_ANNOTATION] == "g"
            assert t["spec"]["schedulerName"] == "volcano"
            assert POD_GROUP_LABEL not in t["metadata"]["labels"]


def test_a_group_without_a_policy_gets_no_gang_fields() -> None:
    rbg = group(None)
    for role in rbg.spec.roles:
        for t in _templates(build_workload(rbg, role, gang=ALL)):
            assert POD_GROUP_LABEL not in t["metadata"]["labels"]
            assert "workloadRef" not in t["spec"] and "schedulerName" not in t["spec"]
