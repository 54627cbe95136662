"""Topology-aware placement on the sim's default topology (16 GPU nodes of 8 GPUs: an NVLink block and a
PCIe block in zone-a, a multi-node NVLink clique block and a PCIe block in zone-b, 32 GPUs per block).

Groups are applied as a user would; the tests read where the scheduler put the pods, and what the group's
status and workloads say."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.placement.topology import gpus_of_pod

from .conftest import SimCluster
from .rbg_helpers import NAME_LABEL, ROOT, condition, create_rbg, rbgs, wait_event, wait_rbg, wait_ready

pytestmark = pytest.mark.sim
RDMA = "rbg.x-k8s.io/rdma-block"
ZONE = "topology.kubernetes.io/zone"
CLIQUE = "nvidia.com/gpu.clique"


def engine(gpus: int) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "100m"}}
    return {"spec": {"containers": [{"name": "engine", "image": "sglang:sim", "resources": resources}]}}


def group(
    name: str, placement: dict[str, Any], prefill: tuple[int, int], decode: tuple[int, int]
) -> dict[str, Any]:
    """A PD group: (replicas, GPUs per pod) for prefill and decode, and a CPU router."""
    router = {"spec": {"containers": [{"name": "router", "image": "router:sim"}]}}
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
        "spec": {
            "placement": placement,
            "roles": [
                {"name": "router", "replicas": 1, "template": router},
                {"name": "prefill", "replicas": prefill[0], "template": engine(prefill[1])},
                {"name": "decode", "replicas": decode[0], "template": engine(decode[1])},
            ],
        },
    }


async def node_labels(kube: KubeClient) -> dict[str, dict[str, str]]:
    nodes = (await kube.get("/api/v1/nodes"))["items"]
    return {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes}


async def gpu_pods(kube: KubeClient, ns: str, name: str) -> list[dict[str, Any]]:
    items = (await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{NAME_LABEL}={name}"))["items"]
    return [
        p for p in items if gpus_of_pod(p, "nvidia.com/gpu") and not p["metadata"].get("deletionTimestamp")
    ]


async def domains_of(kube: KubeClient, ns: str, name: str, key: str) -> set[str | None]:
    labels = await node_labels(kube)
    return {labels[p["spec"]["nodeName"]].get(key) for p in await gpu_pods(kube, ns, name)}


async def until_gpus_free(kube: KubeClient, *, settled: bool = False, timeout: float = 120) -> None:
    """Until no pod of an earlier test holds a GPU; `settled`: also until no namespace of an earlier test is
    still being deleted (a group's repair may recreate a pod, and its grant stands, until the group itself
    is gone), for the tests that count on every GPU of a domain."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        namespaces = (await kube.get("/api/v1/namespaces"))["items"] if settled else []
        pods = (await kube.get("/api/v1/pods"))["items"]
        held = [p for p in pods if p["spec"].get("nodeName") and gpus_of_pod(p, "nvidia.com/gpu")]
        going = [n for n in namespaces if (n.get("status") or {}).get("phase") == "Terminating"]
        if not held and not going:
            return
        if loop.time() > deadline:
            left = [o["metadata"]["name"] for o in going + held][:5]
            raise AssertionError(f"namespaces of earlier tests or GPU pods still there: {left}")
        await asyncio.sleep(0.5)


@pytest.fixture(autouse=True)
async def _gpus_free(kube: KubeClient, request: pytest.FixtureRequest) -> None:
    """Each test counts on the cluster's GPUs: wait out the pods of earlier tests (and, where marked, their
    groups)."""
    await until_gpus_free(kube, settled=request.node.get_closest_marker("whole_cluster") is not None)


async def test_a_required_rdma_group_lands_in_one_rdma_block_and_says_where(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    # The example, applied as a user would.
    sim.kubectl_run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "placement.yaml"))
    rbg = await wait_ready(kube, namespace, "pd-placed", generation=1, timeout=120)
    blocks = await domains_of(kube, namespace, "pd-placed", RDMA)
    assert len(blocks) == 1 and None not in blocks
    assert len(await gpu_pods(kube, namespace, "pd-placed")) == 4
    placement = rbg["status"]["placement"]
    (block,) = blocks
    assert placement["tier"] == "rdma" and placement["policy"] == "Required" and placement["score"] == 1
    assert placement["domains"] == {"prefill": f"{RDMA}={block}", "decode": f"{RDMA}={block}"}
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/pd-placed-decode")
    affinity = sts["spec"]["template"]["spec"]["affinity"]
    required = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": RDMA, "operator": "In", "values": [block]}]}
    ]
    (apart,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert apart["topologyKey"] == RDMA  # exclusive
    # The router has no GPU: nothing constrains it.
    router = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/pd-placed-router")
    assert "affinity" not in router["spec"]["template"]["spec"]


async def test_an_infeasible_required_group_is_refused_with_the_shortfall_and_nothing_is_created(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    # 40 GPUs in one RDMA block; a block has 32.
    await create_rbg(kube, namespace, group("big", {"policy": "Required", "level": "rdma"}, (5, 4), (5, 4)))
    rbg = await wait_rbg(
        kube,
        namespace,
        "big",
        lambda o: (condition(o, "Progressing") or {}).get("reason") == "Unplaceable",
        "refused",
    )
    message = condition(rbg, "Progressing")["message"]  # type: ignore[index]
    assert "needs 40 GPUs in one rdma-block; the best rdma-block has" in message, message
    assert rbg["status"]["phase"] == "Failed"
    await wait_event(kube, namespace, "big", "Unplaceable", warning=True, contains="40 GPUs")
    for kind in ("statefulsets", "deployments"):
        items = (await kube.get(f"/apis/apps/v1/namespaces/{namespace}/{kind}"))["items"]
        assert items == [], kind


async def test_preferred_degrades_tier_by_tier_and_says_so(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    # 48 GPUs: no NVLink domain (the largest, the clique, has 32) nor RDMA block holds them; a zone does.
    await create_rbg(
        kube, namespace, group("wide", {"policy": "Preferred", "level": "nvlink"}, (4, 4), (4, 8))
    )
    rbg = await wait_ready(kube, namespace, "wide", generation=1, timeout=120)
    placement = rbg["status"]["placement"]
    assert placement["tier"] == "zone" and placement["level"] == "nvlink"
    assert "placed at zone" in placement["message"]
    # A preference: the scheduler weighs it against its own spreading, so where each pod lands is its call.
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/wide-prefill")
    affinity = sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity
    (term,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    zone = placement["domains"]["prefill"].split("=", 1)[1]
    assert term == {
        "weight": 100,
        "preference": {"matchExpressions": [{"key": ZONE, "operator": "In", "values": [zone]}]},
    }


async def test_two_exclusive_groups_never_share_a_block(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    spec = {"policy": "Required", "level": "rdma", "exclusive": True}
    for name in ("ex-a", "ex-b"):
        await create_rbg(kube, namespace, group(name, spec, (1, 2), (1, 2)))
    for name in ("ex-a", "ex-b"):
        await wait_ready(kube, namespace, name, generation=1, timeout=120)
    a = await domains_of(kube, namespace, "ex-a", RDMA)
    b = await domains_of(kube, namespace, "ex-b", RDMA)
    assert len(a) == len(b) == 1 and a != b


@pytest.mark.lws
@pytest.mark.whole_cluster
async def test_nvlink_puts_a_leaderworkerset_instance_inside_one_nvlink_domain(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    # One instance: a leader and a worker of 8 GPUs each. No single node has 16; the multi-node NVLink
    # domain (the clique) does.
    body = group("tp", {"policy": "Required", "level": "nvlink"}, (0, 1), (0, 1))
    body["spec"]["roles"] = [
        {
            "name": "decode",
            "replicas": 1,
            "workload": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
            "leaderWorkerSet": {"size": 2},
            "template": engine(8),
        }
    ]
    await create_rbg(kube, namespace, body)
    rbg = await wait_ready(kube, namespace, "tp", generation=1, timeout=120)
    cliques = await domains_of(kube, namespace, "tp", CLIQUE)
    assert len(cliques) == 1 and None not in cliques
    assert len(await gpu_pods(kube, namespace, "tp")) == 2
    placement = rbg["status"]["placement"]
    assert placement["tier"] == "nvlink" and placement["components"]["decode/0"]["key"] == CLIQUE
    lws = await kube.get(
        f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}/leaderworkersets/tp-decode"
    )
    worker = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["affinity"]
    (together,) = worker["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert together["topologyKey"] == CLIQUE
    assert together["matchLabelKeys"] == ["leaderworkerset.sigs.k8s.io/group-key"]


@pytest.mark.whole_cluster
async def test_ten_required_groups_at_once_onto_capacity_for_exactly_ten_all_land_whole(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    # 12 GPUs each (three 4-GPU pods) in one zone: a zone has 64, so five per zone and ten in all. Decided
    # one after another on a snapshot each, two groups would count on the same GPUs and one would hang
    # half-scheduled; the ledger keeps them apart.
    names = [f"g{i}" for i in range(10)]
    spec = {"policy": "Required", "level": "zone"}
    await asyncio.gather(*(create_rbg(kube, namespace, group(n, spec, (1, 4), (2, 4))) for n in names))
    await asyncio.gather(*(wait_ready(kube, namespace, n, generation=1, timeout=240) for n in names))
    per_zone: dict[str | None, int] = {}
    for n in names:
        zones = await domains_of(kube, namespace, n, ZONE)
        assert len(zones) == 1, (n, zones)
        (zone,) = zones
        per_zone[zone] = per_zone.get(zone, 0) + 1
    assert per_zone == {"zone-a": 5, "zone-b": 5}
    objs = (await kube.get(rbgs(namespace)))["items"]
    assert all(o["status"]["placement"]["tier"] == "zone" for o in objs)
