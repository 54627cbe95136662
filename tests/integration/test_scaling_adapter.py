"""RoleBasedGroupScalingAdapters on the sim, driven with kubectl as a user (or an HPA) would: created
Bound for a role with scalingAdapter.enable, `kubectl scale rbgsa` scales the role, a re-apply that
resets the role's replicas loses to the Bound adapter (with a Warning Event), disabling removes it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for

from .conftest import SimCluster
from .rbg_helpers import ROOT, condition, example, wait_event, wait_rbg, wait_ready
from .test_upgrade import watching

pytestmark = pytest.mark.sim
NAME = "pd-autoscaled"
ADAPTER = f"{NAME}-decode"
ROLE_LABEL = "rolebasedgroup.workloads.x-k8s.io/role"


def adapters(ns: str) -> str:
    return f"/apis/workloads.x-k8s.io/v1alpha1/namespaces/{ns}/rolebasedgroupscalingadapters"


async def wait_adapter(kube: KubeClient, ns: str, predicate: Any, what: str) -> dict[str, Any]:
    objs = await wait_for(
        kube,
        adapters(ns),
        lambda o: ADAPTER in o and predicate(o[ADAPTER]),
        name=ADAPTER,
        timeout=90,
        what=what,
    )
    return dict(objs[ADAPTER])


def apply(sim: SimCluster, ns: str, body: dict[str, Any]) -> None:
    sim.kubectl_run("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))


class LiveDecodePods:
    """The fewest live decode pods seen once the watch's initial list is in."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.fewest: int | None = None
        self.recording = False

    def on_event(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if (meta.get("labels") or {}).get(ROLE_LABEL) != "decode":
            return
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self.live.discard(meta["name"])
        else:
            self.live.add(meta["name"])
        if self.recording:
            self.fewest = len(self.live) if self.fewest is None else min(self.fewest, len(self.live))


async def test_the_adapter_scales_its_role_and_wins_over_a_re_apply(
    kube: KubeClient, orchestrator: Any, namespace: str, sim: SimCluster
) -> None:
    sim.kubectl_run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "scaling-adapter.yaml"))
    rbg = await wait_ready(kube, namespace, NAME, generation=1, timeout=120)
    adapter = await wait_adapter(
        kube, namespace, lambda a: (a.get("status") or {}).get("phase") == "Bound", "adapter Bound"
    )
    assert adapter["spec"] == {"replicas": 1, "scaleTargetRef": {"name": NAME, "role": "decode"}}
    (owner,) = adapter["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "RoleBasedGroup",
        NAME,
        rbg["metadata"]["uid"],
        True,
    )
    assert (
        adapter["status"]["selector"] == f"rolebasedgroup.workloads.x-k8s.io/name={NAME},{ROLE_LABEL}=decode"
    )
    listed = await kube.get(adapters(namespace))
    assert [a["metadata"]["name"] for a in listed["items"]] == [ADAPTER]  # prefill has none

    # The scale subresource, as an HPA writes it.
    out = sim.kubectl_run("scale", "-n", namespace, f"rbgsa/{ADAPTER}", "--replicas=3")
    assert "scaled" in out.stdout, out
    rbg = await wait_rbg(
        kube,
        namespace,
        NAME,
        lambda o: (
            o["spec"]["roles"][1]["replicas"] == 3
            and (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
            and (condition(o, "Ready") or {}).get("status") == "True"
        ),
        "decode scaled to 3 and Ready",
        timeout=120,
    )
    assert rbg["spec"]["roles"][0]["replicas"] == 1
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{NAME}-decode")
    assert sts["spec"]["replicas"] == 3
    await wait_event(kube, namespace, NAME, "ScaledByAdapter", contains="decode: replicas 1→3")
    adapter = await wait_adapter(
        kube,
        namespace,
        lambda a: (a.get("status") or {}).get("readyReplicas") == 3,
        "adapter readyReplicas 3",
    )
    assert adapter["status"]["replicas"] == 3 and adapter["status"]["lastScaleTime"]

    # A re-apply of the manifest (replicas: 1, as a Helm upgrade does) does not take decode down.
    pods = LiveDecodePods()
    async with watching(kube, namespace, pods, name=NAME):
        pods.recording, pods.fewest = True, len(pods.live)
        apply(sim, namespace, example("scaling-adapter.yaml"))
        await wait_event(
            kube,
            namespace,
            NAME,
            "ScalingAdapterOverride",
            warning=True,
            contains="holds 3; the adapter wins",
        )
        rbg = await wait_ready(kube, namespace, NAME, timeout=120)
    assert rbg["spec"]["roles"][1]["replicas"] == 3
    assert pods.fewest == 3, pods.fewest
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{NAME}-decode")
    assert sts["spec"]["replicas"] == 3

    # Disabled: the adapter goes, the role keeps its replicas.
    body = copy.deepcopy(example("scaling-adapter.yaml"))
    body["spec"]["roles"][1]["scalingAdapter"] = {"enable": False}
    body["spec"]["roles"][1]["replicas"] = 3
    apply(sim, namespace, body)
    await wait_for(kube, adapters(namespace), lambda o: ADAPTER not in o, timeout=90, what="adapter deleted")
    rbg = await wait_ready(kube, namespace, NAME, timeout=120)
    assert rbg["spec"]["roles"][1]["replicas"] == 3
