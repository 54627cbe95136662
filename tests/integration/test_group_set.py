"""RoleBasedGroupSets on the sim, driven with kubectl as a user would: the set's groups are created,
scaled 1→3→1 from the highest index, a template change reaches every group one at a time, the scale
subresource selects one object per group, and deleting the set deletes its groups."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for
from rbg_flows.manifests.group_set import TEMPLATE_HASH_ANNOTATION

from .conftest import SimCluster
from .rbg_helpers import condition, example, is_true, rbgs, wait_event
from .test_upgrade import watching

pytestmark = pytest.mark.sim
NAME = "pd-fleet"
SET_LABEL = "rolebasedgroupset.workloads.x-k8s.io/name"
INDEX_LABEL = "rolebasedgroupset.workloads.x-k8s.io/rbg-index"
NEW_IMAGE = "lmsysorg/sglang:v0.5.5"


def sets(ns: str) -> str:
    return f"/apis/workloads.x-k8s.io/v1alpha2/namespaces/{ns}/rolebasedgroupsets"


def apply(sim: SimCluster, ns: str, body: dict[str, Any]) -> None:
    sim.kubectl_run("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))


async def wait_set(
    kube: KubeClient, ns: str, predicate: Any, what: str, timeout: float = 180
) -> dict[str, Any]:
    objs = await wait_for(
        kube, sets(ns), lambda o: NAME in o and predicate(o[NAME]), name=NAME, timeout=timeout, what=what
    )
    return dict(objs[NAME])


def settled(replicas: int) -> Any:
    """The set at its newest generation with `replicas` groups, all Ready."""

    def ok(s: dict[str, Any]) -> bool:
        st = s.get("status") or {}
        return (
            st.get("observedGeneration") == s["metadata"]["generation"]
            and st.get("replicas") == replicas
            and st.get("readyReplicas") == replicas
            and is_true(s, "Ready")
        )

    return ok


async def groups(kube: KubeClient, ns: str) -> dict[str, dict[str, Any]]:
    listed = await kube.get(rbgs(ns), labelSelector=f"{SET_LABEL}={NAME}")
    return {g["metadata"]["name"]: g for g in listed["items"]}


class Rollout:
    """Watches the set's groups: the order in which each took the new template, and the most groups
    seen taking it at once (from the template's arrival on a group until that group is Ready again)."""

    def __init__(self) -> None:
        self.old_hash: dict[str, str] = {}
        self.order: list[str] = []
        self.in_flight: set[str] = set()
        self.most_in_flight = 0

    def on_event(self, event_type: str, group: dict[str, Any]) -> None:
        meta = group["metadata"]
        name, h = meta["name"], str((meta.get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION))
        old = self.old_hash.setdefault(name, h)
        if h != old and name not in self.order:
            self.order.append(name)
            self.in_flight.add(name)
        ready = condition(group, "Ready") or {}
        if (
            name in self.in_flight
            and ready.get("status") == "True"
            and ready.get("observedGeneration") == meta["generation"]
        ):
            self.in_flight.discard(name)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))


async def test_a_set_scales_1_3_1_and_rolls_its_template_one_group_at_a_time(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    body = example("group-set.yaml")
    body["spec"]["replicas"] = 1
    apply(sim, namespace, body)
    the_set = await wait_set(kube, namespace, settled(1), "the set Ready with 1 group")
    (group,) = (await groups(kube, namespace)).values()
    meta = group["metadata"]
    assert meta["name"] == f"{NAME}-0"
    assert (meta["labels"][SET_LABEL], meta["labels"][INDEX_LABEL]) == (NAME, "0")
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "RoleBasedGroupSet",
        NAME,
        the_set["metadata"]["uid"],
        True,
    )

    sim.kubectl_run("scale", "-n", namespace, f"rbgs/{NAME}", "--replicas=3")
    await wait_set(kube, namespace, settled(3), "the set Ready with 3 groups")
    assert sorted(await groups(kube, namespace)) == [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2"]
    await wait_event(kube, namespace, NAME, "Scaled", contains=f"created {NAME}-1, {NAME}-2")
    # The scale subresource counts groups, and its selector selects one object per group.
    scale = await kube.get(f"{sets(namespace)}/{NAME}/scale")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (3, 3)
    selected = await kube.get(rbgs(namespace), labelSelector=scale["status"]["selector"])
    assert len(selected["items"]) == 3

    changed = copy.deepcopy(body)
    changed["spec"]["replicas"] = 3
    for role in changed["spec"]["template"]["roles"]:
        role["template"]["spec"]["containers"][0]["image"] = NEW_IMAGE
    rollout = Rollout()
    async with watching(kube, namespace, rollout, collection=rbgs(namespace), selector=f"{SET_LABEL}={NAME}"):
        apply(sim, namespace, changed)
        await wait_set(kube, namespace, settled(3), "the template rolled to every group", timeout=300)
    assert rollout.order == [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2"]
    assert rollout.most_in_flight == 1, "the template reached one group at a time"
    for i in range(3):
        for role in ("prefill", "decode"):
            sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{NAME}-{i}-{role}")
            assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE
    await wait_event(kube, namespace, NAME, "UpdatedGroup", contains=f"{NAME}-2 updated")

    sim.kubectl_run("scale", "-n", namespace, f"rbgs/{NAME}", "--replicas=1")
    await wait_set(kube, namespace, settled(1), "the set back to 1 group")
    await wait_for(
        kube,
        rbgs(namespace),
        lambda o: sorted(o) == [f"{NAME}-0"],
        label_selector=f"{SET_LABEL}={NAME}",
        timeout=60,
        what="the highest indices deleted",
    )

    sim.kubectl_run("delete", "-n", namespace, f"rbgs/{NAME}", "--wait=false")
    await wait_for(
        kube, rbgs(namespace), lambda o: not o, timeout=90, what="the set's groups deleted with it"
    )


async def test_a_set_too_large_is_refused_naming_the_field_and_creates_nothing(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    body = example("group-set.yaml")
    body["spec"]["replicas"] = 5000
    apply(sim, namespace, body)
    the_set = await wait_set(kube, namespace, lambda s: is_true(s, "InvalidSpec"), "InvalidSpec")
    message = (condition(the_set, "InvalidSpec") or {})["message"]
    assert "spec.replicas" in message and "1000" in message
    assert not is_true(the_set, "Ready")
    await wait_event(kube, namespace, NAME, "InvalidSpec", warning=True, contains="spec.replicas")
    assert await groups(kube, namespace) == {}
    # Fixed, it proceeds.
    body["spec"]["replicas"] = 1
    apply(sim, namespace, body)
    fixed = await wait_set(kube, namespace, settled(1), "the fixed set Ready")
    assert (condition(fixed, "InvalidSpec") or {})["status"] == "False"
