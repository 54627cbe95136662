"""ClusterEngineRuntimeProfiles on the sim: a profile's sidecar reaches the role pods, a RollingUpdate profile
change rolls them through the coordinated upgrade, a NoUpdate one rolls nothing (not even at a later
scale), and a group naming a missing profile is refused by name and deploys once the profile exists."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from rbg_flows.kube.client import JSON_PATCH, ApiError, KubeClient
from rbg_flows.kube.kinds import PROFILES
from rbg_flows.kube.wait import is_ready

from .conftest import SimCluster
from .rbg_helpers import NAME_LABEL, ROOT, condition, create_rbg, rbgs, wait_event, wait_rbg, wait_ready

pytestmark = pytest.mark.sim
EXAMPLE = ROOT / "examples" / "engine-runtime-profile.yaml"
RUNTIME = "rolebasedgroup/rbgs-patio-runtime"
SIDECAR = "patio-runtime"


def example_docs() -> tuple[dict[str, Any], dict[str, Any]]:
    profile, group = (d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d)
    return profile, group


def profile_named(name: str, strategy: str) -> dict[str, Any]:
    profile, _ = example_docs()
    profile["metadata"]["name"] = name
    profile["spec"]["updateStrategy"] = strategy
    return profile


def group_using(profile: str) -> dict[str, Any]:
    _, group = example_docs()
    for role in group["spec"]["roles"]:
        for rt in role.get("engineRuntimes") or []:
            rt["profileName"] = profile
    return group


@pytest.fixture
async def profile_name(kube: KubeClient, namespace: str) -> AsyncIterator[str]:
    """A profile name of this test's own (profiles are cluster-scoped), deleted afterwards."""
    name = f"rt-{namespace}"[:63]
    yield name
    try:
        await kube.delete(PROFILES.path("", name))
    except ApiError as e:
        if e.status != 404:
            raise


async def set_sidecar_image(kube: KubeClient, name: str, image: str) -> None:
    patch = [{"op": "replace", "path": "/spec/containers/0/image", "value": image}]
    await kube.patch(PROFILES.path("", name), patch, content_type=JSON_PATCH)


async def pods_of(kube: KubeClient, ns: str, group: str, role: str) -> list[dict[str, Any]]:
    selector = f"{NAME_LABEL}={group},rolebasedgroup.workloads.x-k8s.io/role={role}"
    items = (await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def sidecar_of(pod_or_template: dict[str, Any]) -> dict[str, Any]:
    spec = pod_or_template["spec"]
    return next(c for c in spec["containers"] if c["name"] == SIDECAR)


async def until_pods(kube: KubeClient, ns: str, group: str, role: str, ok: Any, what: str) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while True:
        pods = await pods_of(kube, ns, group, role)
        if pods and all(ok(p) and is_ready(p) for p in pods):
            return pods
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {[p['metadata']['name'] for p in pods]}")
        await asyncio.sleep(0.2)


async def revisions_of(kube: KubeClient, ns: str, group: str) -> list[dict[str, Any]]:
    items = (
        await kube.get(
            f"/apis/apps/v1/namespaces/{ns}/controllerrevisions", labelSelector=f"{NAME_LABEL}={group}"
        )
    )["items"]
    # The StatefulSets' own revisions carry the group's labels too: only the group's.
    ours = [r for r in items if r["metadata"]["ownerReferences"][0]["kind"] == "RoleBasedGroup"]
    return sorted(ours, key=lambda r: r["revision"])


async def test_the_example_applies_and_its_sidecar_reaches_the_pods_then_a_rolling_update_rolls_them(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    profile, group = example_docs()
    name, pname = group["metadata"]["name"], profile["metadata"]["name"]
    try:
        # As a user would: the profile and the group in one kubectl apply.
        sim.kubectl_run("apply", "-n", namespace, "-f", str(EXAMPLE))
        await wait_ready(kube, namespace, name, generation=1, timeout=120)
        for role in ("prefill", "decode"):
            pods = await until_pods(
                kube,
                namespace,
                name,
                role,
                lambda p: SIDECAR in [c["name"] for c in p["spec"]["containers"]],
                role,
            )
            sidecar = sidecar_of(pods[0])
            assert sidecar["image"] == f"{RUNTIME}:v0.5.0"
            assert f'"worker_type":"{role}"' in sidecar["args"][0]
            env = {v["name"]: v.get("value") for v in sidecar["env"]}
            assert env["SGL_ROUTER_PORT"] == "8000" and env["TOPO_TYPE"] == "sglang"
            assert env["GROUP_NAME"] == name and env["ROLE_NAME"] == role  # the group's own variables too
        router = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-router")
        assert [c["name"] for c in router["spec"]["template"]["spec"]["containers"]] == ["scheduler"]
        assert [r["revision"] for r in await revisions_of(kube, namespace, name)] == [1]
        before = {p["metadata"]["uid"] for p in await pods_of(kube, namespace, name, "prefill")}

        # The profile is RollingUpdate: a change upgrades every role that uses it, as a spec change would.
        await set_sidecar_image(kube, pname, f"{RUNTIME}:v0.5.1")
        for role in ("prefill", "decode"):
            await until_pods(
                kube, namespace, name, role, lambda p: sidecar_of(p)["image"] == f"{RUNTIME}:v0.5.1", role
            )
        await wait_event(kube, namespace, name, "UpgradeSucceeded", timeout=120)
        revisions = await revisions_of(kube, namespace, name)
        assert [r["revision"] for r in revisions] == [1, 2]
        rbg = await wait_rbg(
            kube,
            namespace,
            name,
            lambda o: (
                (o.get("status") or {}).get("currentRevision") == revisions[1]["metadata"]["name"]
                and (condition(o, "Ready") or {}).get("status") == "True"
            ),
            "current revision 2",
        )
        assert rbg["status"]["updateRevision"] == revisions[1]["metadata"]["name"]
        assert rbg["metadata"]["generation"] == 1  # the spec did not change: the profile did
        after = {p["metadata"]["uid"] for p in await pods_of(kube, namespace, name, "prefill")}
        assert not before & after  # every prefill pod was replaced
        router = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}-router")
        assert router["metadata"]["generation"] == 1  # the router uses no profile: not touched
    finally:
        sim.kubectl_run("delete", "clusterengineruntimeprofile", pname, "--ignore-not-found", check=False)


async def test_a_no_update_profile_change_rolls_nothing_not_even_at_a_scale(
    kube: KubeClient, orchestrator: Any, namespace: str, profile_name: str
) -> None:
    await kube.create(PROFILES.collection(""), profile_named(profile_name, "NoUpdate"))
    group = group_using(profile_name)
    name = group["metadata"]["name"]
    await create_rbg(kube, namespace, group)
    await wait_ready(kube, namespace, name, generation=1, timeout=120)
    sts_path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}-prefill"
    sts = await kube.get(sts_path)
    assert sidecar_of(sts["spec"]["template"])["image"] == f"{RUNTIME}:v0.5.0"
    uids = {p["metadata"]["uid"] for p in await pods_of(kube, namespace, name, "prefill")}

    await set_sidecar_image(kube, profile_name, f"{RUNTIME}:v0.5.1")
    await asyncio.sleep(5)  # what a RollingUpdate profile takes to start rolling, with room to spare
    assert (await kube.get(sts_path))["metadata"]["generation"] == sts["metadata"]["generation"]
    assert [r["revision"] for r in await revisions_of(kube, namespace, name)] == [1]

    # A scale re-applies the role: its pods keep the profile as the role's revision was built with.
    scale = [{"op": "replace", "path": "/spec/roles/1/replicas", "value": 2}]  # prefill
    obj = await kube.patch(f"{rbgs(namespace)}/{name}", scale, content_type=JSON_PATCH)
    await wait_ready(kube, namespace, name, generation=obj["metadata"]["generation"], timeout=120)
    pods = await until_pods(kube, namespace, name, "prefill", lambda p: True, "2 prefill pods")
    assert len(pods) == 2
    assert {sidecar_of(p)["image"] for p in pods} == {f"{RUNTIME}:v0.5.0"}
    assert uids <= {p["metadata"]["uid"] for p in pods}  # the first pod was not replaced
    assert sidecar_of((await kube.get(sts_path))["spec"]["template"])["image"] == f"{RUNTIME}:v0.5.0"


async def test_a_missing_profile_is_invalid_spec_naming_it_and_creating_it_deploys(
    kube: KubeClient, orchestrator: Any, namespace: str, profile_name: str
) -> None:
    group = group_using(profile_name)
    name = group["metadata"]["name"]
    await create_rbg(kube, namespace, copy.deepcopy(group))
    rbg = await wait_rbg(
        kube,
        namespace,
        name,
        lambda o: (condition(o, "InvalidSpec") or {}).get("status") == "True",
        "InvalidSpec",
    )
    message = condition(rbg, "InvalidSpec")["message"]  # type: ignore[index]
    # prefill is roles[1] and decode roles[2] in the example (the router is first).
    assert (
        f'spec.roles[1].engineRuntimes[0].profileName: ClusterEngineRuntimeProfile "{profile_name}" not found'
        in (message)
    )
    await wait_event(kube, namespace, name, "InvalidSpec", warning=True, contains=profile_name)
    for kind in ("statefulsets", "deployments"):
        items = (await kube.get(f"/apis/apps/v1/namespaces/{namespace}/{kind}"))["items"]
        assert items == [], kind  # nothing created
    cms = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps", labelSelector=f"{NAME_LABEL}={name}")
    assert cms["items"] == []

    # Created later (NoUpdate, the default): the group waits for it, so it deploys without a spec change.
    await kube.create(PROFILES.collection(""), profile_named(profile_name, "NoUpdate"))
    rbg = await wait_ready(kube, namespace, name, generation=1, timeout=120)
    assert (condition(rbg, "InvalidSpec") or {}).get("status") != "True"
    await until_pods(
        kube,
        namespace,
        name,
        "decode",
        lambda p: SIDECAR in [c["name"] for c in p["spec"]["containers"]],
        "decode",
    )
