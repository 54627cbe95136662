"""Durability and deadlines, each with an orchestrator of its own (own task queue, own namespaces)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.wait import wait_for
from rbg_flows.sim.launch import launched_webhook

from .conftest import SimCluster, start_sim
from .orchestrator import Orchestrator
from .rbg_helpers import NAME_LABEL, condition, create_rbg, entity_id, example, wait_rbg, wait_ready

pytestmark = pytest.mark.sim


@pytest.fixture
def iso_orchestrator(
    sim: SimCluster, temporal_address: str, crds: list[str], iso_namespace: str, tmp_path: Path
) -> Iterator[Orchestrator]:
    orch = Orchestrator(
        temporal_address,
        sim.direct_kubeconfig,
        f"iso-{iso_namespace}",
        tmp_path,
        [iso_namespace],
        worker_args=["--heartbeat-timeout=3", "--ready-deadline=4"],
    ).start()
    yield orch
    orch.stop()


async def test_kill_9_of_the_worker_mid_deploy_finishes_with_nothing_created_twice(
    kube: KubeClient, iso_orchestrator: Orchestrator, iso_namespace: str
) -> None:
    ns = iso_namespace
    creations: dict[str, list[str]] = {}  # object name -> uids seen created

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        if kind == "ADDED":
            uids = creations.setdefault(obj["metadata"]["name"], [])
            if obj["metadata"]["uid"] not in uids:
                uids.append(obj["metadata"]["uid"])

    import asyncio

    watches = [
        asyncio.create_task(
            list_and_watch(kube, p, on_event, params={"labelSelector": f"{NAME_LABEL}=chain"})
        )
        for p in (
            f"/apis/apps/v1/namespaces/{ns}/statefulsets",
            f"/apis/apps/v1/namespaces/{ns}/deployments",
            f"/api/v1/namespaces/{ns}/pods",
        )
    ]
    try:
        await create_rbg(kube, ns, example("dependency-chain.yaml"))
        # Kill the worker once the first level exists and the deploy is waiting on it.
        await wait_for(
            kube,
            f"/apis/apps/v1/namespaces/{ns}/statefulsets",
            lambda o: "chain-cache" in o,
            timeout=60,
            what="first role applied",
        )
        iso_orchestrator.kill_worker()
        iso_orchestrator.start_worker()
        rbg = await wait_ready(kube, ns, "chain", timeout=120)
    finally:
        for w in watches:
            w.cancel()
    assert rbg["status"]["observedGeneration"] == 1
    assert {n for n in creations if not n.startswith("chain-") or n.count("-") == 1} >= {
        "chain-cache",
        "chain-engine",
        "chain-gateway",
    }
    twice = {n: u for n, u in creations.items() if len(u) > 1}
    assert twice == {}, f"created more than once: {twice}"
    for name in ("chain-cache", "chain-engine"):
        sts = await kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{name}")
        assert sts["metadata"]["generation"] == 1  # applied once in effect: no spec rewritten


async def test_a_role_that_never_gets_ready_reports_progress_deadline_exceeded(
    kube: KubeClient, iso_orchestrator: Orchestrator, iso_namespace: str
) -> None:
    body = example("dependency-chain.yaml")
    # A readiness gate nobody opens keeps the engine unready forever.
    body["spec"]["roles"][1]["templatePatch"]["spec"]["readinessGates"] = [
        {"conditionType": "example.com/never"}
    ]
    await create_rbg(kube, iso_namespace, body)
    rbg = await wait_rbg(
        kube,
        iso_namespace,
        "chain",
        lambda o: (condition(o, "Progressing") or {}).get("reason") == "ProgressDeadlineExceeded",
        "ProgressDeadlineExceeded",
        timeout=60,
    )
    assert "engine" in condition(rbg, "Progressing")["message"]  # type: ignore[index]
    # Still managed: a fixed spec is deployed.
    await kube.patch(
        f"/apis/workloads.x-k8s.io/v1alpha1/namespaces/{iso_namespace}/rolebasedgroups/chain",
        {"spec": {"roles": example("dependency-chain.yaml")["spec"]["roles"]}},
    )
    await wait_ready(kube, iso_namespace, "chain", generation=2, timeout=90)


async def test_leaderworkerset_role_without_the_lws_crd_is_invalid(
    sim: SimCluster, temporal_address: str, tmp_path: Path
) -> None:
    if sim.external:
        pytest.skip("starts a sim of its own")
    proc, kubeconfig = start_sim(tmp_path, "--no-lws", "--ready-delay=0.2")
    orch = None
    try:
        async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
            from rbg_flows.kube.crds import install_crds

            await install_crds(kube, conversion_client_config=launched_webhook(tmp_path))
            await kube.create(
                "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nolws"}}
            )
            orch = Orchestrator(
                temporal_address, kubeconfig, f"nolws-{uuid.uuid4().hex[:6]}", tmp_path, ["nolws"]
            )
            orch.start()
            await create_rbg(kube, "nolws", example("pd-disaggregation-lws.yaml"))
            rbg = await wait_rbg(
                kube,
                "nolws",
                "pd-lws",
                lambda o: (condition(o, "InvalidSpec") or {}).get("status") == "True",
                "InvalidSpec",
                timeout=60,
            )
            msg = condition(rbg, "InvalidSpec")["message"]  # type: ignore[index]
            assert "spec.roles[0].workload" in msg and "leaderworkersets.leaderworkerset.x-k8s.io" in msg
            assert (await kube.get("/apis/apps/v1/namespaces/nolws/deployments"))["items"] == []
    finally:
        if orch:
            orch.stop()
        proc.stop()


@pytest.mark.fault_proxy
async def test_deploy_converges_through_api_faults_without_an_error_storm(
    sim: SimCluster,
    fault_proxy: str,
    kube: KubeClient,
    temporal_address: str,
    crds: list[str],
    iso_namespace: str,
    tmp_path: Path,
) -> None:
    from rbg_flows.sim.faultproxy import FaultProxyControl, FaultRule

    ns = iso_namespace
    control = FaultProxyControl(fault_proxy)
    # 10% of the orchestrator's requests in this namespace fail: conflicts, throttling, server errors.
    await control.set_rules(
        [
            FaultRule(verb=verb, resource=resource, namespace=ns, fraction=0.1, action=action)
            for verb in ("patch", "create", "get")
            for resource in (
                "statefulsets",
                "deployments",
                "services",
                "configmaps",
                "rolebasedgroups/status",
                "rolebasedgroups",
                "events",
            )
            for action in ("conflict", "throttle", "error")
        ]
    )
    orch = Orchestrator(
        temporal_address,
        sim.kubeconfig,
        f"faults-{ns}",
        tmp_path,
        [ns],
        worker_args=["--heartbeat-timeout=5"],
    ).start()
    try:
        await create_rbg(kube, ns, example("dependency-chain.yaml"))
        rbg = await wait_ready(kube, ns, "chain", timeout=180)
        stats = await control.stats()
    finally:
        await control.clear()
        orch.stop()
    assert rbg["status"]["observedGeneration"] == 1
    injected = sum(stats["injected"].values())
    assert injected >= 3, stats
    # Retries back off: far fewer requests than a retry storm would send.
    assert stats["requests"] < 2000, stats


async def test_the_entity_workflow_continues_as_new_and_keeps_its_state(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    import asyncio

    from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

    body = example("dependency-chain.yaml")
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, "chain")
    path = f"/apis/workloads.x-k8s.io/v1alpha1/namespaces/{namespace}/rolebasedgroups/chain"
    for replicas in (2, 3, 2, 3, 2, 3):
        current = await kube.get(path)
        roles = [
            {**r, "replicas": replicas} if r["name"] == "gateway" else r for r in current["spec"]["roles"]
        ]
        updated = await kube.patch(path, {"spec": {"roles": roles}})
        await wait_ready(kube, namespace, "chain", generation=updated["metadata"]["generation"])
    handle = temporal_env.client.get_workflow_handle(entity_id(cluster_id, namespace, "chain"))
    # The entity settles (and may continue as new) just after the operation wrote the status we waited for.
    continued = ""
    for _ in range(100):
        history = await handle.fetch_history()
        continued = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        state = await handle.query(RoleBasedGroupWorkflow.get_state)
        if continued and state.settled_generation == 7:
            break
        await asyncio.sleep(0.1)
    assert continued, "expected the entity workflow to have continued as new"
    assert state.settled_generation == 7 and state.deployed
    assert len(state.recent) >= 7  # the operation log crossed the run boundary


async def test_kill_9_of_the_worker_mid_failover_still_recreates_the_group_exactly_once(
    kube: KubeClient, iso_orchestrator: Orchestrator, iso_namespace: str
) -> None:
    import asyncio

    from rbg_flows.sim.faults import Faults

    from .test_failover import NAME, PODS, Incarnations, until
    from .test_upgrade import watching

    ns = iso_namespace
    await create_rbg(kube, ns, example("failover.yaml"))
    await wait_ready(kube, ns, NAME, generation=1, timeout=120)
    pods = Incarnations()
    async with watching(kube, ns, pods, name=NAME):
        await Faults(kube).crash_pod(ns, f"{NAME}-decode-0")  # a restart: RecreateRBGOnPodRestart
        await wait_rbg(
            kube,
            ns,
            NAME,
            lambda o: (condition(o, "RestartInProgress") or {}).get("status") == "True",
            "restart",
        )
        iso_orchestrator.kill_worker()
        iso_orchestrator.start_worker()
        await wait_rbg(
            kube,
            ns,
            NAME,
            lambda o: (
                (condition(o, "RestartInProgress") or {}).get("status") == "False"
                and (condition(o, "Ready") or {}).get("status") == "True"
            ),
            "recovered",
            timeout=120,
        )
        await until(lambda: pods.count() == {name: 2 for name in PODS}, "every pod recreated", pods)
        await asyncio.sleep(3)
        assert pods.count() == {name: 2 for name in PODS}, pods.uids  # exactly once, none twice
