"""Failover on the sim, driven as a user (or a failing node) would: deleting a pod of a
RecreateRBGOnPodRestart role recreates every pod of the group exactly once, a second failure inside the
stability window waits for its backoff, maxRestarts ends in Failed, and a role whose policy is None has
only its failed pod replaced."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for
from rbg_flows.sim.faults import Faults

from .conftest import POOL, SimCluster
from .rbg_helpers import ROOT, condition, create_rbg, example, wait_event, wait_rbg, wait_ready
from .test_upgrade import watching

pytestmark = pytest.mark.sim
NAME = "pd-failover"
PODS = (f"{NAME}-prefill-0", f"{NAME}-prefill-1", f"{NAME}-decode-0")


@dataclass
class Incarnations:
    """Every uid each pod name had, and when each began to be deleted (monotonic clock)."""

    uids: dict[str, list[str]] = field(default_factory=dict)
    deleting: dict[str, float] = field(default_factory=dict)  # uid -> when its deletion was seen

    def on_event(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        seen = self.uids.setdefault(meta["name"], [])
        if meta["uid"] not in seen:
            seen.append(meta["uid"])
        if (event_type == "DELETED" or meta.get("deletionTimestamp")) and meta["uid"] not in self.deleting:
            self.deleting[meta["uid"]] = time.monotonic()

    def count(self) -> dict[str, int]:
        return {name: len(self.uids.get(name, [])) for name in PODS}

    def current(self, name: str) -> str:
        return self.uids[name][-1]


def delete_pod(sim: SimCluster, ns: str, name: str) -> None:
    sim.kubectl_run("delete", "pod", "-n", ns, name, "--wait=false")


async def recovered(kube: KubeClient, ns: str, seen: list[str]) -> dict[str, Any]:
    """The group once Ready again after a recreation, recording RestartInProgress along the way."""

    def done(o: dict[str, Any]) -> bool:
        seen.append((condition(o, "RestartInProgress") or {}).get("status", ""))
        return "True" in seen and (condition(o, "Ready") or {}).get("status") == "True"

    return await wait_rbg(kube, ns, NAME, done, "recreated and Ready", timeout=120)


async def until(predicate: Any, what: str, pods: Incarnations, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {pods.uids}")
        await asyncio.sleep(0.1)


async def applied_example(sim: SimCluster, kube: KubeClient, ns: str) -> None:
    """examples/failover.yaml applied with kubectl, as a user would, and Ready."""
    sim.kubectl_run("apply", "-n", ns, "-f", str(ROOT / "examples" / "failover.yaml"))
    await wait_ready(kube, ns, NAME, generation=1, timeout=120)


async def test_a_failed_pod_recreates_the_group_once_with_backoff_until_max_restarts(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    await applied_example(sim, kube, namespace)
    pods = Incarnations()
    async with watching(kube, namespace, pods, name=NAME):
        assert pods.count() == {name: 1 for name in PODS}

        # 1. A decode pod deleted: every pod of the group recreated exactly once.
        delete_pod(sim, namespace, f"{NAME}-decode-0")
        states: list[str] = []
        rbg = await recovered(kube, namespace, states)
        first_done = time.monotonic()
        await until(lambda: pods.count() == {name: 2 for name in PODS}, "every pod recreated once", pods)
        assert condition(rbg, "RestartInProgress")["status"] == "False"  # type: ignore[index]
        await wait_event(kube, namespace, NAME, "FailoverSucceeded")
        await asyncio.sleep(2)  # nothing more happens: no second recreation, no cascade
        assert pods.count() == {name: 2 for name in PODS}

        # 2. Again inside the window: the recreation waits its backoff, 5 s after the group was back.
        delete_pod(sim, namespace, f"{NAME}-decode-0")
        await recovered(kube, namespace, [])
        await until(lambda: pods.count() == {name: 3 for name in PODS}, "every pod recreated twice", pods)
        prefill_gone = pods.deleting[pods.uids[f"{NAME}-prefill-0"][1]]
        assert prefill_gone - first_done >= 4.5, prefill_gone - first_done

        # 3. and 4.: the third recreation (after 10 s), then a fourth failure: maxRestarts 3 reached.
        delete_pod(sim, namespace, f"{NAME}-decode-0")
        await recovered(kube, namespace, [])
        await until(
            lambda: pods.count() == {name: 4 for name in PODS}, "every pod recreated three times", pods
        )
        delete_pod(sim, namespace, f"{NAME}-decode-0")
        rbg = await wait_rbg(
            kube, namespace, NAME, lambda o: (o.get("status") or {}).get("phase") == "Failed", "Failed"
        )
        assert condition(rbg, "RestartInProgress")["reason"] == "MaxRestartsExceeded"  # type: ignore[index]
        await wait_event(kube, namespace, NAME, "MaxRestartsExceeded", warning=True, contains="maxRestarts 3")
        await asyncio.sleep(3)
        # Only the deleted pod was replaced (by its StatefulSet): no recreation of the group.
        assert pods.count() == {f"{NAME}-prefill-0": 4, f"{NAME}-prefill-1": 4, f"{NAME}-decode-0": 5}


async def test_policy_none_replaces_only_the_failed_pod(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    await applied_example(sim, kube, namespace)
    pods = Incarnations()
    async with watching(kube, namespace, pods, name=NAME):
        delete_pod(sim, namespace, f"{NAME}-prefill-1")
        await until(lambda: pods.count()[f"{NAME}-prefill-1"] == 2, "prefill-1 replaced", pods)
        await wait_ready(kube, namespace, NAME, timeout=60)
        await asyncio.sleep(3)
        assert pods.count() == {f"{NAME}-prefill-0": 1, f"{NAME}-prefill-1": 2, f"{NAME}-decode-0": 1}


async def test_a_crashed_container_of_a_role_instance_policy_recreates_only_that_pod(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    body = example("failover.yaml")
    body["spec"]["roles"][1]["restartPolicyConfig"]["type"] = "RecreateRoleInstanceOnPodRestart"
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)
    pods = Incarnations()
    async with watching(kube, namespace, pods, name=NAME):
        await Faults(kube).crash_pod(namespace, f"{NAME}-decode-0")  # its container restarts
        await until(lambda: pods.count()[f"{NAME}-decode-0"] == 2, "decode-0 recreated", pods)
        await wait_event(
            kube, namespace, NAME, "InstanceRecreated", contains=f"{NAME}-decode-0 of role decode"
        )
        await wait_ready(kube, namespace, NAME, timeout=60)
        await asyncio.sleep(3)
        assert pods.count() == {f"{NAME}-prefill-0": 1, f"{NAME}-prefill-1": 1, f"{NAME}-decode-0": 2}


def on_node(role: dict[str, Any], node: str) -> None:
    """The role's pods pinned to one of the fault pool's nodes (tainted: no other test's pods land there)."""
    spec = role["template"]["spec"]
    spec["nodeSelector"] = {**POOL["nodeSelector"], "kubernetes.io/hostname": node}
    spec["tolerations"] = POOL["tolerations"]


async def test_a_node_made_notready_triggers_the_policy_of_the_roles_on_it(
    kube: KubeClient, orchestrator: Any, namespace: str, extra_nodes: Any
) -> None:
    """decode (RecreateRBGOnPodRestart) on fault-node-0, prefill (None) on fault-node-1: fault-node-0 stops
    its heartbeats, the real node lifecycle controller marks it and evicts decode's pod, and that eviction
    recreates the whole group once; when the node is back (its kubelet finishes the deletion) the group is
    Ready again with every pod new."""
    body = example("failover.yaml")
    prefill, decode = body["spec"]["roles"]
    on_node(prefill, "fault-node-1")
    on_node(decode, "fault-node-0")
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)
    pods = Incarnations()
    async with watching(kube, namespace, pods, name=NAME):
        faults = Faults(kube)
        await faults.node_not_ready("fault-node-0")

        def unreachable(objs: dict[str, Any]) -> bool:
            node = objs.get("fault-node-0") or {"status": {}, "spec": {}}
            return any(
                c["type"] == "Ready" and c["status"] == "Unknown"
                for c in node["status"].get("conditions", [])
            ) and any(t["key"] == "node.kubernetes.io/unreachable" for t in node["spec"].get("taints", []))

        await wait_for(
            kube,
            "/api/v1/nodes",
            unreachable,
            name="fault-node-0",
            timeout=90,
            what="node tainted unreachable",
        )
        states: list[str] = []
        await wait_rbg(
            kube,
            namespace,
            NAME,
            lambda o: (condition(o, "RestartInProgress") or {}).get("status") == "True",
            "the eviction starts a Failover",
            timeout=60,
        )
        # The decode pod stays Terminating while its kubelet is away (as on a real cluster): the Failover
        # waits for it, and finishes once the node is back.
        await faults.node_ready("fault-node-0")
        await recovered(kube, namespace, states)
        await until(lambda: pods.count() == {name: 2 for name in PODS}, "every pod recreated once", pods)
        await wait_event(kube, namespace, NAME, "FailoverSucceeded")
        await asyncio.sleep(2)
        assert pods.count() == {name: 2 for name in PODS}
