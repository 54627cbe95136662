"""Least privilege, proven: the worker and the watcher run as the ServiceAccounts of deploy/, with only the
rights its RBAC grants, and the spine and an upgrade (with a rollback) still go through; the API server's
real RBAC authorizer refuses what they were not granted."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api.keys import ROLE_LABEL
from rbg_flows.kube.client import JSON_PATCH, ApiError, KubeClient
from rbg_flows.rollout.observer import pod_images
from rbg_flows.sim.controlplane import http_ok
from rbg_flows.sim.procs import free_port
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

from .conftest import SimCluster, scratch_namespace
from .orchestrator import Orchestrator
from .rbg_helpers import (
    NAME_LABEL,
    ROOT,
    create_rbg,
    entity_id,
    example,
    kubeconfig_with_user,
    rbgs,
    token_for,
    wait_event,
    wait_rbg,
    wait_ready,
)

pytestmark = pytest.mark.sim

SYSTEM_NAMESPACE = "rbg-flows-system"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
OLD, NEW = "lmsysorg/sglang:v0.5.4", "lmsysorg/sglang:v0.5.5"
# What a refused request leaves in either process's log: the status code or reason, or kopf's
# "Not enough permissions" when it degrades instead of failing.
REFUSED = re.compile(r"\b403\b|forbidden|not enough permissions", re.IGNORECASE)
# A 403 that is not RBAC's: writes into a namespace being deleted (an earlier test's, torn down).
TERMINATING = "because it is being terminated"


def kustomize(sim: SimCluster, path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(sim.kubectl), "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def token_kubeconfig(admin: Path, user: str, token: str, out: Path) -> Path:
    return kubeconfig_with_user(admin, user, {"token": token}, out)


async def account_kubeconfigs(sim: SimCluster, kube: KubeClient, suffix: str, out: Path) -> dict[str, Path]:
    """A kubeconfig for each of the worker's and the watcher's ServiceAccounts (`rbg-flows-<who><suffix>`)."""
    return {
        who: token_kubeconfig(
            sim.direct_kubeconfig,
            who,
            await token_for(kube, SYSTEM_NAMESPACE, f"rbg-flows-{who}{suffix}"),
            out / f"{who}{suffix}.yaml",
        )
        for who in ("worker", "watcher")
    }


@pytest.fixture(scope="module")
def deploy_rbac(sim: SimCluster, crds: list[str]) -> list[dict[str, Any]]:
    """deploy/'s namespace, ServiceAccounts and cluster RBAC, applied as `kubectl apply -k` would (the
    Deployments are left out: on the sim their pods would only be simulated)."""
    docs = [d for d in kustomize(sim, ROOT / "deploy") if d["kind"] in RBAC_KINDS]
    sim.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return docs


@pytest.fixture(scope="module")
async def kubeconfigs(
    kube: KubeClient,
    deploy_rbac: list[dict[str, Any]],
    sim: SimCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    return await account_kubeconfigs(sim, kube, "", tmp_path_factory.mktemp("rbac-kubeconfigs"))


def run_as(
    temporal_address: str, kubeconfigs: dict[str, Path], log_dir: Path, namespaces: list[str]
) -> Orchestrator:
    """The processes with the endpoint flags deploy/ gives them, on free local ports."""
    health, metrics, watcher_metrics = (f"127.0.0.1:{free_port()}" for _ in range(3))
    return Orchestrator(
        temporal_address,
        kubeconfigs["worker"],
        f"rbac-{uuid.uuid4().hex[:8]}",
        log_dir,
        namespaces,
        worker_args=["--heartbeat-timeout=5", f"--health-address={health}", f"--metrics-address={metrics}"],
        # Leader election as deployed: the Lease in the watcher's namespace, through its Role there.
        watcher_args=[
            f"--metrics-address={watcher_metrics}",
            f"--lease-namespace={SYSTEM_NAMESPACE}",
            f"--lease-name=rbac-{uuid.uuid4().hex[:8]}",
        ],
        watcher_kubeconfig=kubeconfigs["watcher"],
        leader_election=True,
    ).start()


def endpoint(args: list[str], flag: str, path: str) -> str:
    address = next(a.split("=", 1)[1] for a in args if a.startswith(f"{flag}="))
    return f"http://{address}{path}"


@pytest.fixture
def restricted(temporal_address: str, kubeconfigs: dict[str, Path], tmp_path: Path) -> Iterator[Orchestrator]:
    """The real processes under their own accounts; the watcher cluster-wide, as deploy/ runs it. Per
    test: a cluster-wide watcher left running would serve the namespaced test's group too."""
    orch = run_as(temporal_address, kubeconfigs, tmp_path, [])
    yield orch
    orch.stop()


@pytest.fixture
async def rbac_namespace(kube: KubeClient) -> AsyncIterator[str]:
    # Not t-* nor iso-*: the session's shared orchestrators (full rights) must not serve these groups.
    async with scratch_namespace(kube, f"rbac-{uuid.uuid4().hex[:8]}") as name:
        yield name


def refusals(orch: Orchestrator) -> list[str]:
    lines = []
    for log in sorted(orch.log_dir.glob("*.log")):
        lines += [f"{log.name}: {line}" for line in log.read_text(errors="replace").splitlines()]
    return [line for line in lines if REFUSED.search(line) and TERMINATING not in line]


async def test_the_spine_runs_under_the_deployed_rbac(
    sim: SimCluster, kube: KubeClient, restricted: Orchestrator, rbac_namespace: str
) -> None:
    ns = rbac_namespace
    sim.kubectl_run("apply", "-n", ns, "-f", str(ROOT / "examples" / "pd-disaggregation.yaml"))
    await wait_ready(kube, ns, "pd-demo", generation=1, timeout=180)
    for role in ("prefill", "decode"):
        sts = await kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/pd-demo-{role}")
        assert sts["status"].get("readyReplicas") == sts["spec"]["replicas"]
        assert await kube.get(f"/api/v1/namespaces/{ns}/services/s-pd-demo-{role}")
    router = await kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/pd-demo-router")
    assert router["status"].get("readyReplicas") == router["spec"]["replicas"]
    assert await kube.get(f"/api/v1/namespaces/{ns}/configmaps/pd-demo")
    revisions = await kube.get(
        f"/apis/apps/v1/namespaces/{ns}/controllerrevisions", labelSelector=f"{NAME_LABEL}=pd-demo"
    )
    # The StatefulSets make their own, labelled from their pod templates; the group's is the one it owns.
    ours = [r for r in revisions["items"] if r["metadata"]["ownerReferences"][0]["kind"] == "RoleBasedGroup"]
    assert len(ours) == 1
    # What the probes and the PodMonitor of deploy/ reach, served under the restricted identity too.
    assert http_ok(endpoint(restricted.worker_args, "--health-address", "/healthz"))
    assert http_ok(endpoint(restricted.worker_args, "--metrics-address", "/metrics"))
    assert http_ok(endpoint(restricted.watcher_args, "--metrics-address", "/metrics"))
    assert refusals(restricted) == [], restricted.logs()


async def test_an_upgrade_and_a_rollback_run_under_the_deployed_rbac(
    kube: KubeClient, restricted: Orchestrator, temporal_env: Any, cluster_id: str, rbac_namespace: str
) -> None:
    ns, name = rbac_namespace, "pd-upgrade"
    await create_rbg(kube, ns, example("coordinated-upgrade.yaml"))
    await wait_ready(kube, ns, name, generation=1, timeout=180)

    patch = [
        {"op": "replace", "path": "/spec/roleTemplates/0/template/spec/containers/0/image", "value": NEW}
    ]
    obj = await kube.patch(f"{rbgs(ns)}/{name}", patch, content_type=JSON_PATCH)
    rbg = await wait_ready(kube, ns, name, generation=obj["metadata"]["generation"], timeout=180)
    assert rbg["status"]["currentRevision"] == rbg["status"]["updateRevision"]
    pods = (await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{NAME_LABEL}={name}"))["items"]
    engines = [
        p
        for p in pods
        if p["metadata"]["labels"][ROLE_LABEL] != "router" and not p["metadata"].get("deletionTimestamp")
    ]
    assert engines and all(pod_images(p) == (NEW,) for p in engines)
    await wait_event(kube, ns, name, "UpgradeSucceeded")

    # A rollback rewrites the group's spec (a JSON patch of the RoleBasedGroup) and recreates revision 1.
    handle = temporal_env.client.get_workflow_handle(entity_id(cluster_id, ns, name))
    await handle.execute_update(RoleBasedGroupWorkflow.rollback, 1)
    gen = int(rbg["metadata"]["generation"])
    back = await wait_rbg(
        kube,
        ns,
        name,
        lambda o: (
            o["metadata"]["generation"] > gen
            and (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in o["status"].get("conditions") or []
            )
        ),
        "rolled back",
        timeout=180,
    )
    assert back["spec"]["roleTemplates"][0]["template"]["spec"]["containers"][0]["image"] == OLD
    await wait_event(kube, ns, name, "RollbackSucceeded")
    assert refusals(restricted) == [], restricted.logs()


async def test_what_the_accounts_were_not_granted_is_refused(
    kube: KubeClient, kubeconfigs: dict[str, Path], rbac_namespace: str
) -> None:
    nodes = (await kube.get("/api/v1/nodes"))["items"]
    assert nodes
    async with await KubeClient.from_kubeconfig(kubeconfigs["worker"]) as worker:
        with pytest.raises(ApiError) as deleting:
            await worker.delete(f"/api/v1/nodes/{nodes[0]['metadata']['name']}")
        assert deleting.value.status == 403
        with pytest.raises(ApiError) as listing:
            await worker.get(f"/api/v1/namespaces/{rbac_namespace}/secrets")
        assert listing.value.status == 403
        # What it was granted does work through the same client: the refusals above are RBAC's.
        assert "items" in await worker.get("/api/v1/pods", labelSelector=NAME_LABEL)
    async with await KubeClient.from_kubeconfig(kubeconfigs["watcher"]) as watcher:
        # The watcher writes nothing to the user's objects (RBAC decides before the object is looked up,
        # so no group needs to exist, and none is made for the running processes to act on).
        with pytest.raises(ApiError) as patching:
            await watcher.patch(f"{rbgs(rbac_namespace)}/any", {"metadata": {"annotations": {"x": "y"}}})
        assert patching.value.status == 403
        with pytest.raises(ApiError) as reading:
            await watcher.get(f"/api/v1/namespaces/{rbac_namespace}/secrets")
        assert reading.value.status == 403
        assert "items" in await watcher.get(rbgs(rbac_namespace))


@pytest.mark.parametrize("kustomization", ["deploy", "deploy/overlays/namespaced"])
async def test_kubectl_apply_k_dry_run_server_passes(
    sim: SimCluster, kube: KubeClient, deploy_rbac: list[dict[str, Any]], kustomization: str, tmp_path: Path
) -> None:
    docs = kustomize(sim, ROOT / kustomization)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    rest = tmp_path / "rest.yaml"
    rest.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "CustomResourceDefinition"]))
    # The sim's CRDs call its own webhook by URL: a client-side apply would merge deploy/'s Service
    # reference into that (both set: invalid), so the CRDs are checked as the replacement they would be.
    crd_file = tmp_path / "crds.yaml"
    crd_file.write_text(yaml.safe_dump_all(crds))

    async def dry_run() -> subprocess.CompletedProcess[str]:
        return sim.kubectl_run("apply", "-f", str(rest), "--dry-run=server", check=False)

    if kustomization == "deploy":
        result = await dry_run()
    else:
        # The overlay's Roles live in the namespace it watches, which the user creates first.
        async with scratch_namespace(kube, "rbg-workloads"):
            result = await dry_run()
    assert result.returncode == 0, result.stderr
    assert "(server dry run)" in result.stdout
    replaced = sim.kubectl_run("replace", "-f", str(crd_file), "--dry-run=server", check=False)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.count("replaced (server dry run)") == len(crds) >= 4
    # The namespace enforces the restricted Pod Security Standard: the pod templates meet it.
    assert "violate" not in result.stderr, result.stderr


def namespaced_rbac(sim: SimCluster, ns: str) -> list[dict[str, Any]]:
    """The namespaced overlay's RBAC with its Roles in `ns`, under names of its own (suffix -ns), so the
    base's cluster-wide grants, applied in the same session, lend its accounts nothing."""
    docs = [
        d
        for d in kustomize(sim, ROOT / "deploy" / "overlays" / "namespaced")
        if d["kind"] in (RBAC_KINDS | {"Role", "RoleBinding"}) - {"Namespace"}
    ]
    for d in docs:
        d["metadata"]["name"] += "-ns"
        if d["kind"] in {"Role", "RoleBinding"} and d["metadata"]["namespace"] == "rbg-workloads":
            d["metadata"]["namespace"] = ns
        if "roleRef" in d:
            d["roleRef"]["name"] += "-ns"
        for subject in d.get("subjects") or []:
            subject["name"] += "-ns"
    return docs


async def namespaced_install(
    sim: SimCluster, kube: KubeClient, temporal_address: str, ns: str, tmp_path: Path
) -> tuple[Orchestrator, dict[str, Path]]:
    """The namespaced overlay's RBAC for `ns`, and the worker and watcher started under its accounts (the
    watcher as the overlay runs it: --namespace=<the one namespace>)."""
    docs = namespaced_rbac(sim, ns)
    assert {d["kind"] for d in docs} >= {"Role", "RoleBinding", "ClusterRole", "ServiceAccount"}
    sim.kubectl_run("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    kubeconfigs = await account_kubeconfigs(sim, kube, "-ns", tmp_path)
    return run_as(temporal_address, kubeconfigs, tmp_path / "logs", [ns]), kubeconfigs


async def test_the_namespaced_overlay_serves_its_namespace_and_writes_nowhere_else(
    sim: SimCluster,
    kube: KubeClient,
    deploy_rbac: list[dict[str, Any]],
    temporal_address: str,
    rbac_namespace: str,
    tmp_path: Path,
) -> None:
    ns = rbac_namespace
    orch, kubeconfigs = await namespaced_install(sim, kube, temporal_address, ns, tmp_path)
    try:
        sim.kubectl_run("apply", "-n", ns, "-f", str(ROOT / "examples" / "pd-disaggregation.yaml"))
        await wait_ready(kube, ns, "pd-demo", generation=1, timeout=180)
        assert refusals(orch) == [], orch.logs()
    finally:
        orch.stop()
    async with await KubeClient.from_kubeconfig(kubeconfigs["worker"]) as worker:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rbg-flows-probe"}}
        with pytest.raises(ApiError) as elsewhere:
            await worker.apply("/api/v1/namespaces/default/configmaps/rbg-flows-probe", cm, "rbac-test")
        assert elsewhere.value.status == 403


async def profile_example_rolls(sim: SimCluster, kube: KubeClient, orch: Orchestrator, ns: str) -> None:
    """The engine runtime example (a cluster-scoped profile and a group using it) deploys, and a change of
    the profile upgrades the group: the worker reads profiles, the watcher watches them."""
    example_path = ROOT / "examples" / "engine-runtime-profile.yaml"
    profile = "/apis/workloads.x-k8s.io/v1alpha1/clusterengineruntimeprofiles/sglang-pd-runtime"
    try:
        sim.kubectl_run("apply", "-n", ns, "-f", str(example_path))
        await wait_ready(kube, ns, "sglang-pd", generation=1, timeout=180)
        patch = [{"op": "replace", "path": "/spec/containers/0/image", "value": "patio-runtime:next"}]
        await kube.patch(profile, patch, content_type=JSON_PATCH)
        await wait_event(kube, ns, "sglang-pd", "UpgradeSucceeded", timeout=180)
        sts = await kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/sglang-pd-prefill")
        images = {c["name"]: c["image"] for c in sts["spec"]["template"]["spec"]["containers"]}
        assert images["patio-runtime"] == "patio-runtime:next"  # the only upgrade: the profile's
        assert refusals(orch) == [], orch.logs()
    finally:
        sim.kubectl_run("delete", "clusterengineruntimeprofile", "sglang-pd-runtime", "--ignore-not-found")


async def test_engine_runtime_profiles_run_under_the_deployed_rbac(
    sim: SimCluster, kube: KubeClient, restricted: Orchestrator, rbac_namespace: str
) -> None:
    await profile_example_rolls(sim, kube, restricted, rbac_namespace)


async def test_engine_runtime_profiles_run_under_the_namespaced_overlay(
    sim: SimCluster,
    kube: KubeClient,
    deploy_rbac: list[dict[str, Any]],
    temporal_address: str,
    rbac_namespace: str,
    tmp_path: Path,
) -> None:
    """Profiles are cluster-scoped: the namespaced install reads them through its ClusterRoles."""
    ns = rbac_namespace
    orch, _ = await namespaced_install(sim, kube, temporal_address, ns, tmp_path)
    try:
        await profile_example_rolls(sim, kube, orch, ns)
    finally:
        orch.stop()
