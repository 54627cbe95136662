"""The watcher against the real processes: it stores nothing on the user's objects, logs in through exec
credential plugins, and resyncs entity workflows whose group was deleted while it was down."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for

from .conftest import SimCluster
from .orchestrator import Orchestrator
from .rbg_helpers import NAME_LABEL, create_rbg, entity_id, kubeconfig_with_user, rbgs, token_for, wait_ready

pytestmark = pytest.mark.sim

OUR_PREFIX = "rbg-flows.workloads.x-k8s.io"
KOPF_PREFIX = "kopf.zalando.org"


def small_group(name: str = "web", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
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


def _orchestrator(
    sim: SimCluster, temporal_address: str, ns: str, log_dir: Path, kubeconfig: Path | None = None
) -> Orchestrator:
    return Orchestrator(
        temporal_address,
        kubeconfig or sim.direct_kubeconfig,
        f"iso-{ns}",
        log_dir,
        [ns],
        worker_args=["--heartbeat-timeout=5"],
    )


@pytest.fixture
def iso_orchestrator(
    sim: SimCluster, temporal_address: str, crds: list[str], iso_namespace: str, tmp_path: Path
) -> Iterator[Orchestrator]:
    orch = _orchestrator(sim, temporal_address, iso_namespace, tmp_path).start()
    yield orch
    orch.stop()


async def test_the_watcher_stores_nothing_on_the_group_and_still_sees_spec_edits(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await create_rbg(kube, namespace, small_group(replicas=1))
    rbg = await wait_ready(kube, namespace, "web", generation=1)
    meta = rbg["metadata"]
    spec_text = json.dumps(rbg["spec"], sort_keys=True)
    for key, value in (meta.get("annotations") or {}).items():
        assert not key.startswith((OUR_PREFIX, KOPF_PREFIX)), f"bookkeeping annotation {key}"
        assert "roles" not in value and spec_text not in value, f"{key} holds a copy of the spec"
    assert not meta.get("finalizers")
    # kopf (its own user agent) never wrote to the object: only the test and the worker did.
    assert not [m for m in meta.get("managedFields") or [] if "kopf" in m.get("manager", "")]

    # A spec edit still reaches the workflow without a diff base: scale the role, see the workload follow.
    await kube.patch(f"{rbgs(namespace)}/web", {"spec": {"roles": small_group(replicas=3)["spec"]["roles"]}})
    await wait_ready(kube, namespace, "web", generation=2)
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/web-web")
    assert sts["spec"]["replicas"] == 3
    rbg = await kube.get(f"{rbgs(namespace)}/web")
    assert not [
        k for k in rbg["metadata"].get("annotations") or {} if k.startswith((OUR_PREFIX, KOPF_PREFIX))
    ]


EXEC_PLUGIN = """\
import json, os, sys
with open({log!r}, "a") as f:
    f.write(f"{{os.getppid()}}\\n")
json.dump({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
           "status": {{"token": {token!r}}}}}, sys.stdout)
"""


async def _service_account_token(kube: KubeClient, ns: str, name: str) -> str:
    """A token for a new cluster-admin service account, from the TokenRequest API."""
    await kube.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    await kube.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{ns}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    )
    return await token_for(kube, ns, name, seconds=3600)


def _exec_kubeconfig(admin: Path, plugin: Path, out: Path) -> Path:
    exec_plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin)],
        "interactiveMode": "Never",
    }
    return kubeconfig_with_user(admin, "exec-user", {"exec": exec_plugin}, out)


async def test_both_processes_log_in_through_an_exec_credential_plugin(
    sim: SimCluster,
    kube: KubeClient,
    temporal_address: str,
    crds: list[str],
    iso_namespace: str,
    tmp_path: Path,
) -> None:
    ns = iso_namespace
    token = await _service_account_token(kube, ns, "orchestrator")
    calls = tmp_path / "exec-calls.log"
    plugin = tmp_path / "credential-plugin.py"
    plugin.write_text(textwrap.dedent(EXEC_PLUGIN.format(log=str(calls), token=token)))
    kubeconfig = _exec_kubeconfig(sim.direct_kubeconfig, plugin, tmp_path / "exec-kubeconfig.yaml")
    orch = _orchestrator(sim, temporal_address, ns, tmp_path, kubeconfig=kubeconfig)
    try:
        orch.start()
        await create_rbg(kube, ns, small_group())
        await wait_ready(kube, ns, "web", generation=1)
        assert orch.worker and orch.watcher
        callers = set(calls.read_text().split())
        # The plugin ran under each process: the watcher (kopf's login) and the worker (its client).
        assert {str(orch.worker.pid), str(orch.watcher.pid)} <= callers, (callers, orch.logs())
    finally:
        orch.stop()
        await kube.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{ns}-orchestrator")


async def _group_gone(kube: KubeClient, ns: str, name: str) -> None:
    """Wait until nothing of the group is left: its workloads, services, config maps and pods, which the
    API server's garbage collector removes through their ownerReferences."""
    for path in (
        f"/apis/apps/v1/namespaces/{ns}/statefulsets",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        f"/api/v1/namespaces/{ns}/services",
        f"/api/v1/namespaces/{ns}/configmaps",
        f"/api/v1/namespaces/{ns}/pods",
    ):
        await wait_for(
            kube,
            path,
            lambda objs: not objs,
            label_selector=f"{NAME_LABEL}={name}",
            timeout=60,
            what=f"nothing of {name} left in {path}",
        )


async def _delete_while_the_watcher_is_down(kube: KubeClient, orch: Orchestrator, ns: str) -> None:
    assert orch.watcher
    orch.watcher.stop()
    await kube.delete(f"{rbgs(ns)}/web")
    await wait_for(kube, rbgs(ns), lambda objs: "web" not in objs, timeout=30, what="web deleted")


async def test_a_group_deleted_while_the_watcher_was_down_ends_its_entity_at_restart(
    kube: KubeClient, temporal_env: Any, iso_orchestrator: Orchestrator, iso_namespace: str, cluster_id: str
) -> None:
    ns = iso_namespace
    await create_rbg(kube, ns, small_group())
    await wait_ready(kube, ns, "web", generation=1)
    handle = temporal_env.client.get_workflow_handle(entity_id(cluster_id, ns, "web"))

    await _delete_while_the_watcher_is_down(kube, iso_orchestrator, ns)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING  # nobody told it yet
    iso_orchestrator.start_watcher()

    await asyncio.wait_for(handle.result(), timeout=60)  # the entity ends: resync told it
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    await _group_gone(kube, ns, "web")


async def test_a_group_created_again_while_the_watcher_was_down_is_not_taken_for_the_old_one(
    kube: KubeClient, temporal_env: Any, iso_orchestrator: Orchestrator, iso_namespace: str, cluster_id: str
) -> None:
    ns = iso_namespace
    old = await create_rbg(kube, ns, small_group(replicas=1))
    await wait_ready(kube, ns, "web", generation=1)

    await _delete_while_the_watcher_is_down(kube, iso_orchestrator, ns)
    new = await create_rbg(kube, ns, small_group(replicas=2))
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    iso_orchestrator.start_watcher()

    # Whichever comes first, the resync's deleted(old uid) or the spec signal of the new object, the new
    # group is deployed and managed under its own uid.
    await wait_ready(kube, ns, "web", generation=1, timeout=90)

    def new_owner(objs: dict[str, Any]) -> bool:
        sts = objs.get("web-web")
        return bool(
            sts
            and sts["spec"]["replicas"] == 2
            and [o["uid"] for o in sts["metadata"].get("ownerReferences") or []] == [new["metadata"]["uid"]]
        )

    await wait_for(
        kube, f"/apis/apps/v1/namespaces/{ns}/statefulsets", new_owner, timeout=60, what="owned by new uid"
    )
    rbg = await kube.get(f"{rbgs(ns)}/web")
    assert rbg["status"]["observedGeneration"] == 1
    desc = await temporal_env.client.get_workflow_handle(entity_id(cluster_id, ns, "web")).describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING


@pytest.mark.fault_proxy
async def test_a_group_whose_watch_event_is_missed_is_deployed_by_the_resync(
    sim: SimCluster,
    fault_proxy: str,
    kube: KubeClient,
    temporal_address: str,
    crds: list[str],
    iso_namespace: str,
    tmp_path: Path,
) -> None:
    """The first listings of the namespace's groups fail (a 409 the real API server would not send, which
    kopf does not retry: its stream of that namespace stays down until the namespace changes). The group
    created then is seen by no watch event; the resync finds it unserved and signals it."""
    from rbg_flows.sim.faultproxy import FaultProxyControl, FaultRule

    ns = iso_namespace
    control = FaultProxyControl(fault_proxy)
    await control.set_rules(
        [
            FaultRule(
                verb="list",
                resource="rolebasedgroups",
                namespace=ns,
                fraction=1.0,
                action="conflict",
                count=2,
            )
        ]
    )
    orch = Orchestrator(
        temporal_address, sim.kubeconfig, f"missed-{ns}", tmp_path, [ns], watcher_args=["--resync-every=3"]
    ).start()
    try:
        await create_rbg(kube, ns, small_group())
        await wait_ready(kube, ns, "web", generation=1, timeout=60)
        assert sum((await control.stats())["injected"].values()) >= 1
    finally:
        await control.clear()
        orch.stop()
