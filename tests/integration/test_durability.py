"""Durability and deadlines, each with an orchestrator of its own (own task queue, own namespaces)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.wait import wait_for

from .conftest import SimCluster, scratch_namespace, start_sim
from .orchestrator import Orchestrator
from .rbg_helpers import NAME_LABEL, condition, create_rbg, example, wait_rbg, wait_ready

pytestmark = pytest.mark.sim


@pytest.fixture
async def iso_namespace(kube: KubeClient) -> AsyncIterator[str]:
    async with scratch_namespace(kube, f"iso-{uuid.uuid4().hex[:8]}") as name:
        yield name


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
        watcher_args=["--heartbeat-timeout=3", "--ready-deadline=4"],
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
            from rbg_flows.install import install_crds

            await install_crds(kube)
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
