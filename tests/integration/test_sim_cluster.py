"""The sim behaves like a real cluster: nodes from the topology, scheduling, kubelet-like pod lifecycle,
and the real workload controllers (StatefulSet, Deployment, LeaderWorkerSet)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rbg_flows.kube.client import STRATEGIC, KubeClient
from rbg_flows.kube.wait import is_ready, wait_for
from rbg_flows.sim.topology import CLIQUE, GPU, INTERCONNECT, RDMA_BLOCK, ZONE, default_topology

from .conftest import SimCluster

pytestmark = pytest.mark.sim


def pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "registry.example/engine:1", **spec.pop("container", {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **spec.pop("metadata", {})},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 5, **spec},
    }


async def create_pod(kube: KubeClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return await kube.create(f"/api/v1/namespaces/{ns}/pods", body)


async def wait_pod(
    kube: KubeClient, ns: str, name: str, predicate: Any, what: str, timeout: float = 30
) -> dict[str, Any]:
    objs = await wait_for(
        kube,
        f"/api/v1/namespaces/{ns}/pods",
        lambda o: name in o and predicate(o[name]),
        name=name,
        timeout=timeout,
        what=what,
    )
    return objs[name]


async def test_nodes_carry_topology_labels_capacity_and_version(sim: SimCluster, kube: KubeClient) -> None:
    nodes = {n["metadata"]["name"]: n for n in (await kube.get("/api/v1/nodes"))["items"]}
    topo = dict(default_topology().expand())
    if sim.external:
        pytest.skip("an external cluster has its own nodes besides the simulated ones")
    assert set(topo) <= set(nodes)
    clique_nodes = [n for n in nodes.values() if CLIQUE in n["metadata"]["labels"]]
    assert len({n["metadata"]["labels"][CLIQUE] for n in clique_nodes}) == 1 and len(clique_nodes) >= 2
    for name, group in topo.items():
        node = nodes[name]
        for key, value in group.labels.items():
            assert node["metadata"]["labels"][key] == value
        assert node["status"]["capacity"] == group.capacity
        assert node["status"]["allocatable"].get(GPU) == group.capacity.get(GPU)
        assert node["status"]["nodeInfo"]["kubeletVersion"] == sim.info["kubernetesVersion"]
    gpu_nodes = [n for n in nodes.values() if n["status"]["capacity"].get(GPU) == "8"]
    assert len(gpu_nodes) >= 16
    assert {n["metadata"]["labels"][ZONE] for n in gpu_nodes} == {"zone-a", "zone-b"}
    assert len({n["metadata"]["labels"][RDMA_BLOCK] for n in gpu_nodes}) >= 4
    assert {n["metadata"]["labels"][INTERCONNECT] for n in gpu_nodes} == {"nvlink", "pcie"}
    leases = (await kube.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"))["items"]
    assert set(topo) <= {lease["metadata"]["name"] for lease in leases}


async def test_kubectl_sees_the_real_server_version(sim: SimCluster) -> None:
    out = json.loads(sim.kubectl_run("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == sim.info.get(
        "kubernetesVersion", out["serverVersion"]["gitVersion"]
    )
    assert out["serverVersion"]["gitVersion"].startswith("v1.")
    assert "$Format" not in out["serverVersion"]["gitCommit"]


async def test_gpu_requests_and_affinity_drive_real_scheduling(kube: KubeClient, namespace: str) -> None:
    # 8 GPUs fit a whole GPU node; 9 GPUs fit none, and the real scheduler says so.
    await create_pod(kube, namespace, pod("whole-node", container={"resources": {"limits": {GPU: "8"}}}))
    await create_pod(kube, namespace, pod("too-big", container={"resources": {"limits": {GPU: "9"}}}))
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": CLIQUE, "operator": "Exists"}]}]
            }
        }
    }
    await create_pod(
        kube, namespace, pod("in-clique", affinity=affinity, container={"resources": {"limits": {GPU: "1"}}})
    )
    whole = await wait_pod(kube, namespace, "whole-node", is_ready, "whole-node Ready")
    node = await kube.get(f"/api/v1/nodes/{whole['spec']['nodeName']}")
    assert node["status"]["capacity"][GPU] == "8"
    clique = await wait_pod(kube, namespace, "in-clique", is_ready, "in-clique Ready")
    node = await kube.get(f"/api/v1/nodes/{clique['spec']['nodeName']}")
    assert CLIQUE in node["metadata"]["labels"]

    def unschedulable(p: dict[str, Any]) -> bool:
        return any(
            c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in p.get("status", {}).get("conditions") or []
        )

    too_big = await wait_pod(kube, namespace, "too-big", unschedulable, "too-big Unschedulable")
    assert not too_big["spec"].get("nodeName")
    assert "nvidia.com/gpu" in next(
        c["message"] for c in too_big["status"]["conditions"] if c["type"] == "PodScheduled"
    )


async def test_pod_runs_then_turns_ready_after_the_delay(kube: KubeClient, namespace: str) -> None:
    seen: list[tuple[str, bool]] = []

    def record(p: dict[str, Any]) -> bool:
        seen.append((p.get("status", {}).get("phase", ""), is_ready(p)))
        return is_ready(p)

    await create_pod(kube, namespace, pod("p", initContainers=[{"name": "init", "image": "busybox"}]))
    ready = await wait_pod(kube, namespace, "p", record, "p Ready")
    # The kubelet reports Running-but-unready first, and Ready only after the readiness delay.
    assert ("Running", False) in seen
    status = ready["status"]
    assert status["podIP"] and status["hostIP"] and status["startTime"]
    assert status["containerStatuses"][0]["ready"] is True
    assert status["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


async def test_readiness_gates_hold_ready_until_the_condition_is_true(
    kube: KubeClient, namespace: str
) -> None:
    await create_pod(kube, namespace, pod("gated", readinessGates=[{"conditionType": "example.com/gate"}]))

    def containers_ready(p: dict[str, Any]) -> bool:
        return any(
            c["type"] == "ContainersReady" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions") or []
        )

    p = await wait_pod(kube, namespace, "gated", containers_ready, "gated ContainersReady")
    assert not is_ready(p)
    await kube.patch(
        f"/api/v1/namespaces/{namespace}/pods/gated/status",
        {
            "status": {
                "conditions": [
                    {
                        "type": "example.com/gate",
                        "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        },
        STRATEGIC,
    )
    await wait_pod(kube, namespace, "gated", is_ready, "gated Ready once the gate opens")


async def test_graceful_deletion_is_finished_like_a_kubelet(kube: KubeClient, namespace: str) -> None:
    await create_pod(kube, namespace, pod("doomed"))
    await wait_pod(kube, namespace, "doomed", is_ready, "doomed Ready")
    await kube.delete(f"/api/v1/namespaces/{namespace}/pods/doomed")
    await wait_for(
        kube,
        f"/api/v1/namespaces/{namespace}/pods",
        lambda o: "doomed" not in o,
        name="doomed",
        timeout=30,
        what="doomed gone",
    )


SSA_MANIFEST = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 3
  podManagementPolicy: Parallel
  serviceName: web
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: engine:1, resources: {{limits: {{nvidia.com/gpu: "2"}}}}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: router, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: router}}}}
  template:
    metadata: {{labels: {{app: router}}}}
    spec:
      containers: [{{name: c, image: router:1}}]
---
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {{name: decode, namespace: {ns}}}
spec:
  replicas: 2
  leaderWorkerTemplate:
    size: 3
    workerTemplate:
      spec:
        containers: [{{name: c, image: engine:1}}]
"""


@pytest.mark.lws
async def test_workload_controllers_and_kubectl_behave_as_on_any_cluster(
    sim: SimCluster, kube: KubeClient, namespace: str
) -> None:
    sim.kubectl_run("apply", "--server-side", "-f", "-", input=SSA_MANIFEST.format(ns=namespace))
    sim.kubectl_run("-n", namespace, "rollout", "status", "statefulset/web", "--timeout=60s")
    sim.kubectl_run("-n", namespace, "rollout", "status", "deployment/router", "--timeout=60s")
    sim.kubectl_run(
        "-n",
        namespace,
        "wait",
        "--for=jsonpath={.status.readyReplicas}=2",
        "leaderworkerset/decode",
        "--timeout=60s",
    )
    # LWS counts a group ready once its worker StatefulSet exists at the right revision (its own rule),
    # so the workers' readiness is awaited on the pods themselves.
    objs = await wait_for(
        kube,
        f"/api/v1/namespaces/{namespace}/pods",
        lambda o: len(o) == 6 and all(is_ready(p) for p in o.values()),
        label_selector="leaderworkerset.sigs.k8s.io/name=decode",
        timeout=30,
        what="6 LWS pods",
    )
    lws_pods = list(objs.values())
    # The LWS pod webhook (real) injected its labels and env.
    worker = next(p for p in lws_pods if p["metadata"]["name"] == "decode-0-1")
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["LWS_LEADER_ADDRESS"].startswith("decode-0.decode") and env["LWS_GROUP_SIZE"] == "3"
    assert worker["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"] == "1"
    explain = sim.kubectl_run("explain", "statefulset.spec.podManagementPolicy").stdout
    assert "Parallel" in explain
    # Server-side apply: field ownership is tracked per manager.
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/web")
    assert any(
        m["manager"] == "kubectl" and m["operation"] == "Apply" for m in sts["metadata"]["managedFields"]
    )
    sim.kubectl_run("-n", namespace, "delete", "statefulset/web", "--cascade=foreground", "--timeout=60s")
    remaining = (await kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=web"))["items"]
    assert remaining == []


async def test_kopf_runs_a_small_operator(
    sim: SimCluster, kube: KubeClient, namespace: str, tmp_path: Any
) -> None:
    import os
    import sys

    from rbg_flows.sim.procs import ManagedProcess

    operator = tmp_path / "op.py"
    operator.write_text(
        "import kopf\n"
        "@kopf.on.create('configmaps', labels={'kopf-test': 'yes'})\n"
        "def mark(patch, **_):\n"
        "    patch.metadata.annotations['seen-by'] = 'kopf'\n"
    )
    proc = ManagedProcess(
        "kopf",
        [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={namespace}", str(operator)],
        tmp_path / "kopf.log",
        env={**os.environ, "KUBECONFIG": str(sim.direct_kubeconfig)},
    )
    proc.start()
    try:
        await kube.create(
            f"/api/v1/namespaces/{namespace}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "labels": {"kopf-test": "yes"}},
            },
        )
        await wait_for(
            kube,
            f"/api/v1/namespaces/{namespace}/configmaps",
            lambda o: (o.get("cm", {}).get("metadata", {}).get("annotations") or {}).get("seen-by") == "kopf",
            name="cm",
            timeout=60,
            what="kopf handler to annotate the ConfigMap",
        )
    finally:
        proc.stop()
