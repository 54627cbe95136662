"""StatefulSet, Deployment and LeaderWorkerSet objects of a role."""

from __future__ import annotations

import copy

import pytest

from rbg_flows.api import RoleBasedGroup
from rbg_flows.manifests import (
    build_deployment,
    build_leaderworkerset,
    build_statefulset,
    build_workload,
    group_unique_key,
    lws_restart_policy,
    role_revision_hash,
)
from tests.unit.test_manifests_examples import UID, lws_rbg, pd_rbg

KEY = "8d383b19e5d64f7b2b90f38939baa2584edc25ee"
NAME, ROLE, UNIQUE = (
    "rolebasedgroup.workloads.x-k8s.io/name",
    "rolebasedgroup.workloads.x-k8s.io/role",
    "rolebasedgroup.workloads.x-k8s.io/group-unique-key",
)
OWNER = {
    "apiVersion": "workloads.x-k8s.io/v1alpha1",
    "kind": "RoleBasedGroup",
    "name": "pd-demo",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}


def test_statefulset_shape() -> None:
    rbg = pd_rbg()
    role = rbg.spec.role("prefill")
    sts = build_statefulset(rbg, role)
    common = {NAME: "pd-demo", ROLE: "prefill", UNIQUE: KEY}
    assert sts["apiVersion"] == "apps/v1"
    assert sts["kind"] == "StatefulSet"
    assert sts["metadata"] == {
        "name": "pd-demo-prefill",
        "namespace": "inference",
        "labels": {
            **common,
            "rolebasedgroup.workloads.x-k8s.io/role-revision-hash-prefill": role_revision_hash(
                rbg.spec, role
            ),
        },
        "annotations": {"rolebasedgroup.workloads.x-k8s.io/role-size": "2"},
        "ownerReferences": [OWNER],
    }
    spec = sts["spec"]
    assert {k: v for k, v in spec.items() if k != "template"} == {
        "replicas": 2,
        "selector": {"matchLabels": common},
        "serviceName": "s-pd-demo-prefill",
        "podManagementPolicy": "Parallel",
        "minReadySeconds": 0,
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}},
    }
    template = spec["template"]
    assert template["metadata"] == {"labels": common}
    engine = template["spec"]["containers"][0]
    assert engine["image"] == "lmsysorg/sglang:v0.5.4"
    assert engine["args"] == ["--disaggregation-mode", "prefill", "--port", "8000"]
    assert engine["resources"] == {"limits": {"nvidia.com/gpu": "1"}}


def test_statefulset_rollout_parameters() -> None:
    rbg = pd_rbg(
        prefill={
            "replicas": 3,
            "minReadySeconds": 10,
            "rolloutStrategy": {"rollingUpdate": {"partition": "50%", "maxUnavailable": "34%"}},
        }
    )
    spec = build_statefulset(rbg, rbg.spec.role("prefill"))["spec"]
    assert spec["minReadySeconds"] == 10
    # Percent partitions round up, as Kubernetes does for partition-like counts.
    assert spec["updateStrategy"]["rollingUpdate"] == {"partition": 2, "maxUnavailable": "34%"}
    override = build_workload(rbg, rbg.spec.role("prefill"), partition=1)["spec"]["updateStrategy"]
    assert override["rollingUpdate"]["partition"] == 1


def test_statefulset_omits_a_zero_max_unavailable() -> None:
    rbg = pd_rbg(prefill={"rolloutStrategy": {"rollingUpdate": {"maxUnavailable": "0%", "maxSurge": 1}}})
    update = build_statefulset(rbg, rbg.spec.role("prefill"))["spec"]["updateStrategy"]
    assert update == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}


def test_role_labels_and_annotations_reach_workload_and_pods() -> None:
    rbg = pd_rbg(
        prefill={
            "labels": {"team": "llm", NAME: "spoofed"},
            "annotations": {"owner": "infra"},
            "template": {
                "metadata": {"labels": {"app": "engine", "team": "old"}, "annotations": {"a": "1"}},
                "spec": {"containers": [{"name": "engine", "image": "e"}]},
            },
        }
    )
    sts = build_statefulset(rbg, rbg.spec.role("prefill"))
    assert sts["metadata"]["labels"]["team"] == "llm"
    assert sts["metadata"]["labels"][NAME] == "pd-demo"
    assert sts["metadata"]["annotations"]["owner"] == "infra"
    pod_meta = sts["spec"]["template"]["metadata"]
    assert pod_meta["labels"] == {
        "app": "engine",
        "team": "llm",
        NAME: "pd-demo",
        ROLE: "prefill",
        UNIQUE: KEY,
    }
    assert pod_meta["annotations"] == {"a": "1", "owner": "infra"}
    # role-size is a workload annotation only: it changes on scale.
    assert "rolebasedgroup.workloads.x-k8s.io/role-size" not in pod_meta["annotations"]


def test_deployment_shape() -> None:
    rbg = pd_rbg(router={"rolloutStrategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}})
    deploy = build_deployment(rbg, rbg.spec.role("router"))
    common = {NAME: "pd-demo", ROLE: "router", UNIQUE: KEY}
    assert deploy["apiVersion"] == "apps/v1"
    assert deploy["kind"] == "Deployment"
    assert deploy["metadata"]["name"] == "pd-demo-router"
    assert deploy["metadata"]["ownerReferences"] == [OWNER]
    spec = deploy["spec"]
    assert {k: v for k, v in spec.items() if k != "template"} == {
        "replicas": 1,
        "selector": {"matchLabels": common},
        "minReadySeconds": 0,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
    }
    assert spec["template"]["metadata"]["labels"] == common


def test_leaderworkerset_shape() -> None:
    rbg = lws_rbg(
        prefill={"replicas": 3, "rolloutStrategy": {"rollingUpdate": {"partition": 1, "maxSurge": 1}}}
    )
    role = rbg.spec.role("prefill")
    lws = build_leaderworkerset(rbg, role)
    common = {NAME: "pd-lws", ROLE: "prefill", UNIQUE: group_unique_key("inference", "pd-lws")}
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert lws["kind"] == "LeaderWorkerSet"
    assert lws["metadata"]["name"] == "pd-lws-prefill"
    assert lws["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/role-revision-hash-prefill"] == (
        role_revision_hash(rbg.spec, role)
    )
    assert lws["metadata"]["annotations"] == {"rolebasedgroup.workloads.x-k8s.io/role-size": "3"}
    spec = lws["spec"]
    assert spec["replicas"] == 3
    assert spec["startupPolicy"] == "LeaderCreated"
    assert spec["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 1, "partition": 1},
    }
    group = spec["leaderWorkerTemplate"]
    assert group["size"] == 2
    assert group["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = group["leaderTemplate"], group["workerTemplate"]
    assert leader["metadata"]["labels"] == {"lws-role": "leader", **common}
    assert worker["metadata"]["labels"] == common
    assert leader["spec"]["containers"][0]["args"] == ["--disaggregation-mode", "prefill", "--role", "leader"]
    assert worker["spec"]["containers"][0]["args"] == ["--disaggregation-mode", "prefill", "--role", "worker"]
    for template in (leader, worker):
        assert template["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": "8"}}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, "RecreateGroupOnPodRestart"),
        ("RecreateRoleInstanceOnPodRestart", "RecreateGroupOnPodRestart"),
        ("RecreateRBGOnPodRestart", "RecreateGroupOnPodRestart"),
        ("None", "None"),
    ],
)
def test_leaderworkerset_restart_policy(policy: str | None, expected: str) -> None:
    rbg = lws_rbg(prefill={"restartPolicy": policy})
    role = rbg.spec.role("prefill")
    assert lws_restart_policy(role) == expected
    assert build_leaderworkerset(rbg, role)["spec"]["leaderWorkerTemplate"]["restartPolicy"] == expected


def test_dispatch_by_workload_kind() -> None:
    rbg = pd_rbg()
    kinds = {role.name: build_workload(rbg, role)["kind"] for role in rbg.spec.roles}
    assert kinds == {"prefill": "StatefulSet", "decode": "StatefulSet", "router": "Deployment"}
    served = pd_rbg(router={"workload": {"apiVersion": "workloads.x-k8s.io/v1alpha1", "kind": "InstanceSet"}})
    with pytest.raises(ValueError, match="not served"):
        build_workload(served, served.spec.role("router"))


def test_role_hash_label_changes_only_for_the_changed_role() -> None:
    def labels(rbg: RoleBasedGroup) -> dict[str, str]:
        return {
            role.name: build_workload(rbg, role)["metadata"]["labels"][
                f"rolebasedgroup.workloads.x-k8s.io/role-revision-hash-{role.name}"
            ]
            for role in rbg.spec.roles
        }

    before = labels(pd_rbg())
    assert labels(pd_rbg(prefill={"replicas": 4})) == before
    after = labels(pd_rbg(router={"minReadySeconds": 30}))
    assert after["router"] != before["router"]
    assert {k: v for k, v in after.items() if k != "router"} == {
        k: v for k, v in before.items() if k != "router"
    }


def test_user_nulls_are_dropped() -> None:
    rbg = pd_rbg(
        prefill={
            "template": {
                "metadata": {"labels": None},
                "spec": {
                    "nodeSelector": None,
                    "containers": [{"name": "engine", "image": "e", "args": None}],
                },
            }
        }
    )
    template = build_statefulset(rbg, rbg.spec.role("prefill"))["spec"]["template"]
    assert "nodeSelector" not in template["spec"]
    assert "args" not in template["spec"]["containers"][0]


def test_exclusive_topology() -> None:
    doc = pd_rbg().model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["metadata"]["annotations"] = {
        "rolebasedgroup.workloads.x-k8s.io/exclusive-topology": "nvidia.com/gpu.clique"
    }
    decode = next(role for role in doc["spec"]["roles"] if role["name"] == "decode")
    decode["template"]["metadata"] = {
        "annotations": {"rolebasedgroup.workloads.x-k8s.io/disable-exclusive-topology": "true"}
    }
    rbg = RoleBasedGroup.model_validate(doc)
    prefill = build_workload(rbg, rbg.spec.role("prefill"))["spec"]["template"]
    assert prefill["metadata"]["annotations"] == {
        "rolebasedgroup.workloads.x-k8s.io/exclusive-topology": "nvidia.com/gpu.clique"
    }
    affinity = prefill["spec"]["affinity"]
    assert affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "labelSelector": {"matchExpressions": [{"key": UNIQUE, "operator": "In", "values": [KEY]}]},
            "topologyKey": "nvidia.com/gpu.clique",
        }
    ]
    assert affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "labelSelector": {
                "matchExpressions": [
                    {"key": UNIQUE, "operator": "Exists"},
                    {"key": UNIQUE, "operator": "NotIn", "values": [KEY]},
                ]
            },
            "topologyKey": "nvidia.com/gpu.clique",
        }
    ]
    # The label the affinity selects on is the one every pod of the group carries.
    assert prefill["metadata"]["labels"][UNIQUE] == KEY
    decode_template = build_workload(rbg, rbg.spec.role("decode"))["spec"]["template"]
    assert "affinity" not in decode_template["spec"]


def test_exclusive_topology_in_the_spelling_of_the_current_reference() -> None:
    # rbg.workloads.x-k8s.io/ keys (what the reference writes since v0.8): same placement as the old ones.
    old = pd_rbg().model_dump(mode="json", by_alias=True, exclude_none=True)
    new = copy.deepcopy(old)
    old["metadata"]["annotations"] = {"rolebasedgroup.workloads.x-k8s.io/exclusive-topology": "zone"}
    new["metadata"]["annotations"] = {"rbg.workloads.x-k8s.io/group-exclusive-topology": "zone"}
    decode = next(role for role in new["spec"]["roles"] if role["name"] == "decode")
    decode["annotations"] = {"rbg.workloads.x-k8s.io/role-disable-exclusive": "true"}
    before, after = RoleBasedGroup.model_validate(old), RoleBasedGroup.model_validate(new)
    prefill = build_workload(after, after.spec.role("prefill"))["spec"]["template"]["spec"]
    assert (
        prefill["affinity"]
        == build_workload(before, before.spec.role("prefill"))["spec"]["template"]["spec"]["affinity"]
    )
    assert "affinity" not in build_workload(after, after.spec.role("decode"))["spec"]["template"]["spec"]
