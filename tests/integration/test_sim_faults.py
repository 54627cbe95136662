"""Pod, node and API faults, and the node simulator driving nodes on an already-running cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.kube.wait import is_ready, wait_for
from rbg_flows.sim.faultproxy import FaultProxyControl, FaultRule
from rbg_flows.sim.faults import Faults
from rbg_flows.sim.nodesim import NodeSimulator

from .conftest import POOL, SimCluster
from .test_sim_cluster import create_pod, pod, wait_pod

pytestmark = pytest.mark.sim


def pool_pod(name: str, node: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {**POOL, **extra}
    if node:
        spec["nodeSelector"] = {**POOL["nodeSelector"], "kubernetes.io/hostname": node}
    return pod(name, **spec)


async def test_node_simulator_joins_a_running_cluster(
    kube: KubeClient, extra_nodes: NodeSimulator, namespace: str
) -> None:
    nodes = await wait_for(
        kube,
        "/api/v1/nodes",
        lambda o: (
            all(
                any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                for n in o.values()
            )
            and len(o) == 2
        ),
        label_selector="rbg.x-k8s.io/test-pool=faults",
        timeout=30,
        what="extra nodes Ready",
    )
    assert nodes["fault-node-0"]["spec"]["taints"][0]["key"] == "rbg.x-k8s.io/test-pool"
    await create_pod(kube, namespace, pool_pod("joined"))
    ready = await wait_pod(kube, namespace, "joined", is_ready, "pod on the joined node Ready")
    assert ready["spec"]["nodeName"].startswith("fault-node-")


async def test_crash_fail_hold_and_release(
    kube: KubeClient, extra_nodes: NodeSimulator, namespace: str
) -> None:
    faults = Faults(kube)
    for name in ("crashy", "failing", "held"):
        await create_pod(kube, namespace, pool_pod(name))
    for name in ("crashy", "failing", "held"):
        await wait_pod(kube, namespace, name, is_ready, f"{name} Ready")

    await faults.crash_pod(namespace, "crashy")
    crashed = await wait_pod(kube, namespace, "crashy", lambda p: not is_ready(p), "crashy unready")
    assert crashed["status"]["containerStatuses"][0]["restartCount"] == 1
    back = await wait_pod(kube, namespace, "crashy", is_ready, "crashy Ready after its restart")
    assert back["status"]["containerStatuses"][0]["restartCount"] == 1

    await faults.fail_pod(namespace, "failing")
    failed = await wait_pod(
        kube, namespace, "failing", lambda p: p["status"].get("phase") == "Failed", "failed"
    )
    assert failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1

    await faults.hold_pod(namespace, "held")
    await wait_pod(kube, namespace, "held", lambda p: not is_ready(p), "held unready")
    await faults.release_pod(namespace, "held")
    await wait_pod(kube, namespace, "held", is_ready, "held Ready once released")


async def test_deleted_node_stops_being_simulated(kube: KubeClient, extra_nodes: NodeSimulator) -> None:
    faults = Faults(kube)
    await faults.delete_node("fault-node-0")
    for _ in range(100):
        if "fault-node-0" not in extra_nodes.nodes:
            break
        await asyncio.sleep(0.05)
    assert "fault-node-0" not in extra_nodes.nodes
    assert await kube.get_or_none("/api/v1/nodes/fault-node-0") is None
    # The garbage collector removes the node's Lease (owned by the Node) and nothing renews it back,
    # while the other node's Lease stays.
    leases = await wait_for(
        kube,
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
        lambda o: "fault-node-0" not in o,
        timeout=60,
        what="the deleted node's Lease gone",
    )
    assert "fault-node-1" in leases


def test_fault_cli_refuses_bad_targets(sim: SimCluster) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "rbg_flows.cli", "sim", "fault", "crash", "node/x"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "does not apply to a node" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "rbg_flows.cli", "sim", "fault", "crash", "deployment/x"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "pod/NAME or node/NAME" in out.stderr


@pytest.mark.fault_proxy
async def test_fault_proxy_answers_faults_and_cuts_watches(
    sim: SimCluster, fault_proxy: str, namespace: str
) -> None:
    control = FaultProxyControl(fault_proxy)
    async with await KubeClient.from_kubeconfig(sim.kubeconfig) as through_proxy:
        try:
            await control.set_rules(
                [
                    FaultRule(
                        verb="create",
                        resource="configmaps",
                        namespace=namespace,
                        fraction=1.0,
                        action="error",
                        count=1,
                    )
                ]
            )
            cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
            with pytest.raises(ApiError) as err:
                await through_proxy.create(f"/api/v1/namespaces/{namespace}/configmaps", cm)
            assert err.value.status == 500
            await through_proxy.create(
                f"/api/v1/namespaces/{namespace}/configmaps", cm
            )  # count=1: passes now

            await control.set_rules(
                [
                    FaultRule(
                        verb="get",
                        resource="configmaps",
                        namespace=namespace,
                        fraction=1.0,
                        action="throttle",
                        retry_after_seconds=3,
                    )
                ]
            )
            with pytest.raises(ApiError) as err:
                await through_proxy.get(f"/api/v1/namespaces/{namespace}/configmaps/cm")
            assert err.value.status == 429 and err.value.retry_after == 3

            await control.set_rules(
                [
                    FaultRule(
                        verb="update",
                        resource="configmaps",
                        namespace=namespace,
                        fraction=1.0,
                        action="conflict",
                    )
                ]
            )
            with pytest.raises(ApiError) as err:
                await through_proxy.request("PUT", f"/api/v1/namespaces/{namespace}/configmaps/cm", body=cm)
            assert err.value.status == 409 and err.value.reason == "Conflict"

            await control.set_rules(
                [
                    FaultRule(
                        verb="list",
                        resource="secrets",
                        namespace=namespace,
                        fraction=1.0,
                        action="hang",
                        hang_seconds=1,
                    )
                ]
            )
            with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
                await through_proxy.request("GET", f"/api/v1/namespaces/{namespace}/secrets", timeout=10)
            await control.clear()

            events: list[str] = []

            async def watch() -> None:
                async for ev in through_proxy.watch(f"/api/v1/namespaces/{namespace}/configmaps"):
                    events.append(ev["type"])

            task = asyncio.create_task(watch())
            for _ in range(100):
                if (await control.stats())["active_watches"]:
                    break
                await asyncio.sleep(0.05)
            assert await control.cut_watches() >= 1
            await asyncio.wait_for(task, 10)  # the stream ends, as when an API server drops a watch
            stats = await control.stats()
            assert stats["injected"]["error"] >= 1 and stats["injected"]["throttle"] >= 1
        finally:
            await control.clear()
