"""Headless Services named as the reference names them since v0.5 (`s-<rbg>-<role>`), and a group made
under v0.4's names (`<rbg>-<role>`, what rbg_flows made before) moved to them without losing a pod."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api import STATEFULSET, parse_rbg, workload_name
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.kinds import CONFIGMAP, KINDS, PODS, SERVICE
from rbg_flows.kube.wait import is_ready, wait_for
from rbg_flows.manifests.discovery import discovery_configmap
from rbg_flows.manifests.service import build_headless_service
from rbg_flows.manifests.workloads import build_workload

from .conftest import SimCluster
from .orchestrator import Orchestrator
from .rbg_helpers import NAME_LABEL, create_rbg, example, wait_ready

pytestmark = pytest.mark.sim

GROUP = "pd-demo"
STS_ROLES = ("prefill", "decode")


@pytest.fixture
def own_orchestrator(
    sim: SimCluster, temporal_address: str, crds: list[str], iso_namespace: str, tmp_path: Path
) -> Iterator[Orchestrator]:
    orch = Orchestrator(
        temporal_address, sim.direct_kubeconfig, f"iso-{iso_namespace}", tmp_path, [iso_namespace]
    )
    yield orch
    orch.stop()


async def make_as_v04(kube: KubeClient, ns: str) -> dict[str, Any]:
    """The group's objects as a v0.4-named orchestrator made them: Services and `serviceName` `<rbg>-<role>`,
    discovery addresses through them; returns the created group."""
    created = await create_rbg(kube, ns, example("pd-disaggregation.yaml"))
    rbg, problems = parse_rbg(created)
    assert rbg is not None and not problems
    cm = discovery_configmap(rbg)
    legacy_config = yaml.safe_load(cm["data"]["config.yaml"])
    for name in STS_ROLES:
        for instance in legacy_config["roles"][name]["instances"]:
            pod = instance["address"].split(".")[0]
            instance["address"] = f"{pod}.{workload_name(GROUP, name)}"
    cm["data"]["config.yaml"] = yaml.safe_dump(legacy_config)
    await kube.apply(CONFIGMAP.path(ns, GROUP), cm, FIELD_MANAGER)
    for role in rbg.spec.roles:
        kind = KINDS[role.workload.key]
        body = build_workload(rbg, role)
        if kind.key == STATEFULSET:
            svc = build_headless_service(rbg, role)
            svc["metadata"]["name"] = workload_name(GROUP, role.name)
            await kube.apply(SERVICE.path(ns, svc["metadata"]["name"]), svc, FIELD_MANAGER)
            body["spec"]["serviceName"] = workload_name(GROUP, role.name)
        await kube.apply(kind.path(ns, body["metadata"]["name"]), body, FIELD_MANAGER)
    return created


async def role_pods(kube: KubeClient, ns: str, count: int, ok: Any = is_ready) -> dict[str, dict[str, Any]]:
    def enough(objs: dict[str, dict[str, Any]]) -> bool:
        pods = [p for n, p in objs.items() if n.split("-")[2] in STS_ROLES]
        return len(pods) == count and all(ok(p) for p in pods)

    objs = await wait_for(
        kube,
        PODS.collection(ns),
        enough,
        timeout=120,
        what=f"{count} StatefulSet pods",
        label_selector=f"{NAME_LABEL}={GROUP}",
    )
    return {n: p for n, p in objs.items() if n.split("-")[2] in STS_ROLES}


async def test_a_v04_named_group_moves_to_the_current_names_without_losing_a_pod(
    kube: KubeClient, iso_namespace: str, own_orchestrator: Orchestrator
) -> None:
    ns = iso_namespace
    await make_as_v04(kube, ns)
    before = await role_pods(kube, ns, 4)
    assert {p["spec"]["subdomain"] for p in before.values()} == {f"{GROUP}-prefill", f"{GROUP}-decode"}

    own_orchestrator.start()  # today's orchestrator takes the group over: its first deploy moves it
    await wait_ready(kube, ns, GROUP, timeout=120)
    for role in STS_ROLES:
        sts = await kube.get(KINDS[STATEFULSET].path(ns, f"{GROUP}-{role}"))
        assert sts["spec"]["serviceName"] == f"s-{GROUP}-{role}"
        svc = await kube.get(SERVICE.path(ns, f"s-{GROUP}-{role}"))
        assert (
            svc["spec"]["clusterIP"] == "None"
            and svc["spec"]["selector"]["rolebasedgroup.workloads.x-k8s.io/role"] == role
        )
        # Kept: the pods made under it answer at their old DNS names until they are recreated.
        assert await kube.get_or_none(SERVICE.path(ns, f"{GROUP}-{role}")) is not None
    after = await role_pods(kube, ns, 4)
    assert {n: p["metadata"]["uid"] for n, p in after.items()} == {
        n: p["metadata"]["uid"] for n, p in before.items()
    }, "no pod may be replaced by the move"
    # The StatefulSets adopted the same pods (the orphaned pods got their controller back).
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet" for p in after.values())
    cm = await kube.get(CONFIGMAP.path(ns, GROUP))
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["roles"]["prefill"]["instances"][1]["address"] == f"{GROUP}-prefill-1.s-{GROUP}-prefill"

    # An upgrade recreates the pods under the new Service: the old ones are then deleted.
    rbg = await kube.get(f"/apis/workloads.x-k8s.io/v1alpha1/namespaces/{ns}/rolebasedgroups/{GROUP}")
    spec = copy.deepcopy(rbg["spec"])
    for role in spec["roles"]:
        if role["name"] in STS_ROLES:
            role["template"]["spec"]["containers"][0]["image"] = "lmsysorg/sglang:v0.5.5"
    await kube.patch(
        f"/apis/workloads.x-k8s.io/v1alpha1/namespaces/{ns}/rolebasedgroups/{GROUP}", {"spec": spec}
    )
    await wait_ready(kube, ns, GROUP, generation=2, timeout=180)
    rolled = await role_pods(kube, ns, 4)
    assert not set(p["metadata"]["uid"] for p in rolled.values()) & {
        p["metadata"]["uid"] for p in before.values()
    }
    assert {p["spec"]["subdomain"] for p in rolled.values()} == {f"s-{GROUP}-prefill", f"s-{GROUP}-decode"}

    def retired(objs: dict[str, dict[str, Any]]) -> bool:
        return all(f"{GROUP}-{r}" not in objs and f"s-{GROUP}-{r}" in objs for r in STS_ROLES)

    await wait_for(
        kube,
        SERVICE.collection(ns),
        retired,
        timeout=60,
        what="the v0.4 Services retired",
        label_selector=f"{NAME_LABEL}={GROUP}",
    )
