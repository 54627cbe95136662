"""Several clusters, one Temporal: two sims against the session's Temporal dev server, each with its own
worker and watcher (cluster ids and task queues left to their defaults), and a group of the same name in
the same namespace of each. Both converge, each on its own cluster, and nothing of one runs against the
other: every workflow, activity and workflow task of a cluster's groups ran on that cluster's worker, and
each cluster's objects are owned by its own group."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from rbg_flows.cli.processes import cluster_id_of
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.crds import install_crds
from rbg_flows.messages import RBG_CLUSTER, RBG_NAME, RBG_NAMESPACE, RBG_OPERATION, task_queue_for
from rbg_flows.sim.launch import launched_webhook

from .conftest import SimCluster, start_sim
from .orchestrator import Orchestrator
from .rbg_helpers import create_rbg, entity_id, wait_ready

pytestmark = pytest.mark.sim

NAME = "web"
VISIBILITY_DEADLINE = 120.0  # the visibility store is eventually consistent; this machine is shared


def web(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": NAME},
        "spec": {
            "roles": [
                {
                    "name": "web",
                    "replicas": replicas,
                    "template": {"spec": {"containers": [{"name": "main", "image": "web:1"}]}},
                }
            ]
        },
    }


async def _namespace(kube: KubeClient, name: str) -> None:
    await kube.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


async def _workflows(client: Client, ns: str, want: int) -> list[Any]:
    """Every workflow of the groups named NAME in `ns`, across clusters, once `want` are listed (each
    group's entity and its Deploy); one entry per workflow id (an entity may have continued as new)."""
    query = f'{RBG_NAME.name}="{NAME}" AND {RBG_NAMESPACE.name}="{ns}"'
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBILITY_DEADLINE
    while True:
        found = {wf.id: wf async for wf in client.list_workflows(query)}
        if len(found) >= want:
            return sorted(found.values(), key=lambda wf: wf.id)
        if loop.time() > deadline:
            raise AssertionError(f"{query!r} listed {sorted(found)} after {VISIBILITY_DEADLINE} s")
        await asyncio.sleep(0.5)


@pytest.fixture
async def second_sim(sim: SimCluster, tmp_path: Path) -> AsyncIterator[KubeClient]:
    if sim.external:
        pytest.skip("starts a sim of its own")
    proc, kubeconfig = start_sim(tmp_path / "b", "--no-lws", "--ready-delay=0.2")
    try:
        kube = await KubeClient.from_kubeconfig(kubeconfig)
        try:
            await install_crds(kube, conversion_client_config=launched_webhook(tmp_path / "b"))
            yield kube
        finally:
            await kube.close()
    finally:
        proc.stop(timeout=30)


async def test_two_clusters_share_one_temporal_and_stay_apart(
    sim: SimCluster,
    kube: KubeClient,
    second_sim: KubeClient,
    temporal_env: Any,
    temporal_address: str,
    crds: list[str],
    tmp_path: Path,
) -> None:
    kube_b = second_sim
    clusters = {"a": await cluster_id_of(kube), "b": await cluster_id_of(kube_b)}
    assert clusters["a"] != clusters["b"]  # two control planes, two kube-system UIDs
    kubes = {"a": kube, "b": kube_b}
    kubeconfigs = {"a": sim.direct_kubeconfig, "b": tmp_path / "b" / "kubeconfig"}
    # The same namespace and group name in both: what would collide without a cluster id.
    ns = f"iso-clusters-{uuid.uuid4().hex[:6]}"
    replicas = {"a": 1, "b": 2}  # and different specs, so each cluster's objects say whose they are
    orchestrators: dict[str, Orchestrator] = {}
    try:
        for c in ("a", "b"):
            await _namespace(kubes[c], ns)
            # No task queue and no cluster id: each process derives both from its own cluster.
            orchestrators[c] = Orchestrator(
                temporal_address, kubeconfigs[c], "", tmp_path / f"orch-{c}", [ns]
            ).start()
        rbgs = {c: await create_rbg(kubes[c], ns, web(replicas[c])) for c in ("a", "b")}
        for c in ("a", "b"):
            ready = await wait_ready(kubes[c], ns, NAME, generation=1)
            # The status names this cluster's entity.
            assert ready["status"]["workflowId"] == entity_id(clusters[c], ns, NAME)

        # Each cluster's objects: its own group's replicas, owned by its own group (a worker of the other
        # cluster would have written the other spec and the other uid).
        for c in ("a", "b"):
            sts = await kubes[c].get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{NAME}-web")
            assert sts["spec"]["replicas"] == replicas[c]
            assert [o["uid"] for o in sts["metadata"]["ownerReferences"]] == [rbgs[c]["metadata"]["uid"]]

        # Temporal: per cluster, an entity and a Deploy, with ids, attributes and task queue of that cluster,
        # and every task of their histories run by that cluster's worker.
        workflows = await _workflows(temporal_env.client, ns, want=4)
        by_cluster: dict[str, list[str]] = {"a": [], "b": []}
        for wf in workflows:
            cluster = wf.typed_search_attributes.get(RBG_CLUSTER)
            c = next(k for k, v in clusters.items() if v == cluster)
            by_cluster[c].append(wf.id)
            assert wf.id.startswith(f"rbg.{cluster}.{ns}.{NAME}")
            assert wf.task_queue == task_queue_for(cluster)
            worker = orchestrators[c].worker
            assert worker is not None and worker.proc is not None
            identities, queues = set(), set()
            async for event in temporal_env.client.get_workflow_handle(
                wf.id, run_id=wf.run_id
            ).fetch_history_events():
                if event.HasField("activity_task_scheduled_event_attributes"):
                    queues.add(event.activity_task_scheduled_event_attributes.task_queue.name)
                for started in (
                    "activity_task_started_event_attributes",
                    "workflow_task_started_event_attributes",
                ):
                    if event.HasField(started):
                        identities.add(getattr(event, started).identity.split("@")[0])
            assert identities == {str(worker.proc.pid)}, (wf.id, identities)
            assert queues <= {task_queue_for(cluster)}, (wf.id, queues)
        for c in ("a", "b"):
            assert sorted(by_cluster[c]) == [
                entity_id(clusters[c], ns, NAME),
                f"{entity_id(clusters[c], ns, NAME)}.deploy.1",
            ], by_cluster
        ops = [wf.typed_search_attributes.get(RBG_OPERATION) for wf in workflows]
        assert sorted(o for o in ops if o) == ["Deploy", "Deploy"]
    except BaseException:
        for c, orch in orchestrators.items():
            print(f"=== cluster {c}\n{orch.logs()}")
        raise
    finally:
        for orch in orchestrators.values():
            orch.stop()
        await kube.delete(f"/api/v1/namespaces/{ns}")
