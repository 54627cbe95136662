"""Gang scheduling (`spec.podGroupPolicy`) on the sim, whose kube-scheduler runs Kubernetes v1.35's own
gang scheduling (Workload API, GenericWorkload + GangScheduling): a group one GPU short of fitting binds
no pod, and binds every pod once the GPU frees. The scheduler-plugins and Volcano PodGroups are checked
as objects (those schedulers do not run in the sim): sized to every pod, resized with the group, deleted
with the policy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for

from .conftest import SimCluster
from .rbg_helpers import NAME_LABEL, ROOT, create_rbg, rbgs, wait_ready
from .test_placement import engine, until_gpus_free

pytestmark = pytest.mark.sim
HOSTNAME = "kubernetes.io/hostname"
WORKLOADS = "/apis/scheduling.k8s.io/v1alpha1/namespaces/{ns}/workloads"
PODGROUPS = "/apis/scheduling.x-k8s.io/v1alpha1/namespaces/{ns}/podgroups"
VOLCANO_PODGROUPS = "/apis/scheduling.volcano.sh/v1beta1/namespaces/{ns}/podgroups"


def gang_group(
    name: str, policy: dict[str, Any], roles: list[tuple[str, int, dict[str, Any]]]
) -> dict[str, Any]:
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
        "spec": {
            "podGroupPolicy": policy,
            "roles": [{"name": n, "replicas": r, "template": t} for n, r, t in roles],
        },
    }


def on_node(template: dict[str, Any], node: str) -> dict[str, Any]:
    return {**template, "spec": {**template["spec"], "nodeSelector": {HOSTNAME: node}}}


async def pods_of(kube: KubeClient, ns: str, name: str) -> list[dict[str, Any]]:
    items = (await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{NAME_LABEL}={name}"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def gpu_node(kube: KubeClient) -> str:
    nodes = (await kube.get("/api/v1/nodes"))["items"]
    names = [
        n["metadata"]["name"]
        for n in nodes
        if (n["status"].get("allocatable") or {}).get("nvidia.com/gpu") == "8"
    ]
    return str(sorted(names)[-1])


async def test_a_group_one_gpu_short_binds_no_pod_and_binds_all_once_it_frees(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await until_gpus_free(kube)
    node = await gpu_node(kube)
    # One GPU of the node's 8 taken, so the group's 4 pods of 2 GPUs do not all fit: without a gang,
    # three would bind and hold 6 GPUs for a group that cannot run.
    blocker = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "blocker"},
        "spec": {**on_node(engine(1), node)["spec"], "terminationGracePeriodSeconds": 0},
    }
    await kube.create(f"/api/v1/namespaces/{namespace}/pods", blocker)
    await wait_for(
        kube,
        f"/api/v1/namespaces/{namespace}/pods",
        lambda o: bool(o.get("blocker", {}).get("spec", {}).get("nodeName")),
        timeout=30,
        what="blocker bound",
    )
    two = on_node(engine(2), node)
    body = gang_group("gang", {"kubeScheduling": {}}, [("prefill", 2, two), ("decode", 2, two)])
    await create_rbg(kube, namespace, body)
    workload = await wait_for(
        kube, WORKLOADS.format(ns=namespace), lambda o: "gang" in o, timeout=60, what="the group's Workload"
    )
    assert workload["gang"]["spec"]["podGroups"] == [{"name": "group", "policy": {"gang": {"minCount": 4}}}]
    await wait_for(
        kube,
        f"/api/v1/namespaces/{namespace}/pods",
        lambda o: sum(1 for p in o.values() if p["metadata"]["labels"].get(NAME_LABEL) == "gang") == 4,
        timeout=60,
        what="the gang's 4 pods",
    )
    # Time for the scheduler to try them all (it places pods within milliseconds here).
    await asyncio.sleep(5)
    pods = await pods_of(kube, namespace, "gang")
    assert len(pods) == 4 and all(p["spec"].get("workloadRef", {}).get("name") == "gang" for p in pods)
    assert [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName")] == []
    await kube.delete(f"/api/v1/namespaces/{namespace}/pods/blocker", {"gracePeriodSeconds": 0})
    await wait_ready(kube, namespace, "gang", generation=1, timeout=90)
    assert {p["spec"].get("nodeName") for p in await pods_of(kube, namespace, "gang")} == {node}


async def test_podgroups_are_sized_to_the_group_follow_its_scale_and_go_with_the_policy(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    sim.kubectl_run("apply", "-k", str(ROOT / "deploy" / "gang"))
    await wait_for(
        kube,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        lambda o: all(
            any(
                c["type"] == "Established" and c["status"] == "True"
                for c in o.get(n, {}).get("status", {}).get("conditions", [])
            )
            for n in ("podgroups.scheduling.x-k8s.io", "podgroups.scheduling.volcano.sh")
        ),
        timeout=30,
        what="the PodGroup CRDs Established",
    )
    cpu = {"spec": {"containers": [{"name": "c", "image": "engine:sim"}]}}
    body = gang_group(
        "pg", {"kubeScheduling": {"scheduleTimeoutSeconds": 45}}, [("a", 2, cpu), ("b", 1, cpu)]
    )
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, "pg", generation=1, timeout=90)
    pg = await kube.get(PODGROUPS.format(ns=namespace) + "/pg")
    assert pg["spec"]["minMember"] == 3 and pg["spec"]["scheduleTimeoutSeconds"] == 45
    wl = await kube.get(WORKLOADS.format(ns=namespace) + "/pg")
    assert wl["spec"]["podGroups"][0]["policy"]["gang"]["minCount"] == 3
    pods = await pods_of(kube, namespace, "pg")
    assert {p["metadata"]["labels"].get("scheduling.x-k8s.io/pod-group") for p in pods} == {"pg"}

    # Scale: the gang grows with the group (the Workload's pod groups are immutable: it is replaced).
    patch = [{"op": "replace", "path": "/spec/roles/0/replicas", "value": 4}]
    await kube.patch(rbgs(namespace) + "/pg", patch, content_type="application/json-patch+json")
    await wait_ready(kube, namespace, "pg", generation=2, timeout=90)
    assert (await kube.get(PODGROUPS.format(ns=namespace) + "/pg"))["spec"]["minMember"] == 5
    wl2 = await kube.get(WORKLOADS.format(ns=namespace) + "/pg")
    assert wl2["spec"]["podGroups"][0]["policy"]["gang"]["minCount"] == 5
    assert wl2["metadata"]["uid"] != wl["metadata"]["uid"]

    # The policy removed: its objects go.
    drop = [{"op": "remove", "path": "/spec/podGroupPolicy"}]
    await kube.patch(rbgs(namespace) + "/pg", drop, content_type="application/json-patch+json")
    await wait_ready(kube, namespace, "pg", generation=3, timeout=90)
    assert await kube.get_or_none(PODGROUPS.format(ns=namespace) + "/pg") is None
    assert await kube.get_or_none(WORKLOADS.format(ns=namespace) + "/pg") is None

    # Volcano: its PodGroup with queue and priority; pods name it and Volcano as their scheduler.
    volcano = {"volcanoScheduling": {"queue": "inference", "priorityClassName": "high"}}
    await create_rbg(kube, namespace, gang_group("vc", volcano, [("a", 2, cpu)]))
    groups = await wait_for(
        kube,
        VOLCANO_PODGROUPS.format(ns=namespace),
        lambda o: "vc" in o,
        timeout=60,
        what="the Volcano PodGroup",
    )
    assert groups["vc"]["spec"] == {"minMember": 2, "queue": "inference", "priorityClassName": "high"}
    sts = await wait_for(
        kube,
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets",
        lambda o: "vc-a" in o,
        timeout=60,
        what="the Volcano group's StatefulSet",
    )
    template = sts["vc-a"]["spec"]["template"]
    assert template["spec"]["schedulerName"] == "volcano"
    assert template["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "vc"


async def test_the_example_applied_as_a_user_would_runs_as_one_gang_of_every_pod(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    await until_gpus_free(kube)
    sim.kubectl_run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "gang-scheduling.yaml"))
    await wait_ready(kube, namespace, "gang-pd", generation=1, timeout=120)
    workload = await kube.get(WORKLOADS.format(ns=namespace) + "/gang-pd")
    assert workload["spec"]["podGroups"][0]["policy"]["gang"]["minCount"] == 5
    pods = await pods_of(kube, namespace, "gang-pd")
    assert len(pods) == 5 and all(p["spec"].get("workloadRef", {}).get("name") == "gang-pd" for p in pods)
    assert all(p["spec"].get("nodeName") for p in pods)
