"""v1alpha2 beside v1alpha1 through the conversion webhook, on the real API server: a v1alpha2 group is
served in both versions; with the webhook process stopped, what needs a conversion fails with the API
server's own conversion error and leaves nothing behind, while v1alpha2 requests still work; started
again, everything converts.

Needs the sim's local webhook (the stop and start go through its control endpoint); on an external
cluster (RBG_TEST_KUBECONFIG) the webhook of deploy/ serves the CRDs and these tests are skipped."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from rbg_flows.api.crd import KINDS
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for

from .conftest import SimCluster
from .rbg_helpers import is_true

pytestmark = pytest.mark.sim

V1, V2 = "workloads.x-k8s.io/v1alpha1", "workloads.x-k8s.io/v1alpha2"
TEMPLATE = {"spec": {"containers": [{"name": "engine", "image": "lmsysorg/sglang:v0.5.5"}]}}


def v1alpha2_group(name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": V2,
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
        "spec": {
            "roles": [
                {"name": "prefill", "replicas": replicas, "standalonePattern": {"template": TEMPLATE}},
                {
                    "name": "decode",
                    "replicas": 1,
                    "leaderWorkerPattern": {"size": 2, "template": TEMPLATE},
                },
            ]
        },
    }


def v1alpha1_group(name: str) -> dict[str, Any]:
    return {
        "apiVersion": V1,
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
        "spec": {
            "roles": [
                {
                    "name": "prefill",
                    "replicas": 1,
                    "workload": {"apiVersion": "apps/v1", "kind": "StatefulSet"},
                    "template": TEMPLATE,
                }
            ]
        },
    }


def _resource(version: str) -> str:
    return f"rolebasedgroups.{version.split('/')[1]}.workloads.x-k8s.io"


def get(sim: SimCluster, ns: str, name: str, version: str) -> subprocess.CompletedProcess[str]:
    return sim.kubectl_run("-n", ns, "get", f"{_resource(version)}/{name}", "-o", "json", check=False)


def apply(sim: SimCluster, ns: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return sim.kubectl_run("-n", ns, "apply", "-f", "-", input=yaml.safe_dump(doc), check=False)


def served(sim: SimCluster, ns: str, name: str, version: str) -> dict[str, Any]:
    got = get(sim, ns, name, version)
    assert got.returncode == 0, got.stderr
    obj: dict[str, Any] = json.loads(got.stdout)
    return obj


def conversions(sim: SimCluster, source: str, target: str) -> float:
    """The sim webhook's count of RoleBasedGroups converted from `source` to `target`."""
    if "webhookMetrics" not in sim.info:
        pytest.skip("needs the sim's conversion webhook (its /metrics)")
    text = urllib.request.urlopen(sim.info["webhookMetrics"], timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "rbg_flows_webhook_conversions_total" and labels == {
                "kind": "RoleBasedGroup",
                "from_version": source,
                "to_version": target,
                "result": "success",
            }:
                return float(sample.value)
    return 0.0


@pytest.fixture(autouse=True)
def _v1alpha2_served(crds: list[str]) -> None:
    if not any(kind.serves_v1alpha2 and kind.webhook_conversion for kind in KINDS):
        pytest.skip("v1alpha2 is not served through the webhook yet (rbg_flows.api.crd.SERVE_V1ALPHA2)")


@pytest.fixture
def webhook_restarted(sim: SimCluster) -> Iterator[None]:
    """Whatever the test does to the webhook, it serves again afterwards (the session's CRDs need it)."""
    yield
    assert sim.webhook("start")["running"]


async def test_a_v1alpha2_group_is_served_as_v1alpha1_and_v1alpha2(
    sim: SimCluster, crds: list[str], iso_namespace: str
) -> None:
    namespace = iso_namespace
    made = apply(sim, namespace, v1alpha2_group("twin"))
    assert made.returncode == 0, made.stderr
    new = served(sim, namespace, "twin", V2)
    old = served(sim, namespace, "twin", V1)
    assert (new["apiVersion"], old["apiVersion"]) == (V2, V1)
    assert new["metadata"]["uid"] == old["metadata"]["uid"]
    assert new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]
    roles = {r["name"]: r for r in old["spec"]["roles"]}
    # The v1alpha1 form names the workload the pattern stands for.
    assert roles["prefill"]["workload"]["kind"] == "StatefulSet"
    assert roles["prefill"]["replicas"] == 2
    assert roles["decode"]["workload"]["kind"] == "LeaderWorkerSet"
    assert roles["decode"]["leaderWorkerSet"]["size"] == 2
    # The webhook counted what the API server asked of it.
    assert conversions(sim, V2, V1) > 0
    # Listing in the other version converts every item.
    listed = sim.kubectl_run("-n", namespace, "get", _resource(V1), "-o", "json")
    assert [i["apiVersion"] for i in json.loads(listed.stdout)["items"]] == [V1]
    # A v1alpha1 write of the object is stored (as v1alpha2) and read back in both versions.
    edited = apply(
        sim,
        namespace,
        {"apiVersion": V1, "kind": old["kind"], "metadata": {"name": "twin"}, **_replicas(old, 3)},
    )
    assert edited.returncode == 0, edited.stderr
    assert conversions(sim, V1, V2) > 0
    assert {r["name"]: r["replicas"] for r in served(sim, namespace, "twin", V2)["spec"]["roles"]} == {
        "prefill": 3,
        "decode": 1,
    }


def _replicas(v1: dict[str, Any], prefill: int) -> dict[str, Any]:
    roles = [dict(r, replicas=prefill) if r["name"] == "prefill" else r for r in v1["spec"]["roles"]]
    return {"spec": {**v1["spec"], "roles": roles}}


async def test_without_the_webhook_a_conversion_fails_clearly_and_nothing_is_half_applied(
    sim: SimCluster, crds: list[str], iso_namespace: str, webhook_restarted: None
) -> None:
    namespace = iso_namespace
    assert apply(sim, namespace, v1alpha2_group("stored")).returncode == 0
    before = served(sim, namespace, "stored", V2)
    assert not sim.webhook("stop")["running"]

    # Reading the stored v1alpha2 object as v1alpha1 needs the webhook.
    read = get(sim, namespace, "stored", V1)
    assert read.returncode != 0
    assert "conversion webhook for workloads.x-k8s.io" in read.stderr, read.stderr
    assert sim.info["webhookUrl"].removesuffix("/convert") in read.stderr, read.stderr

    # Creating a v1alpha1 object needs it too (stored as v1alpha2): refused, and no object is left.
    created = apply(sim, namespace, v1alpha1_group("fresh"))
    assert created.returncode != 0
    assert "conversion webhook" in created.stderr, created.stderr
    assert "NotFound" in get(sim, namespace, "fresh", V2).stderr

    # A v1alpha1 change of the stored object: refused, and the object is exactly as it was.
    changed = apply(sim, namespace, v1alpha1_group("stored"))
    assert changed.returncode != 0 and "conversion webhook" in changed.stderr, changed.stderr
    after = served(sim, namespace, "stored", V2)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]

    # v1alpha2, the storage version, needs no conversion: reads and writes still work.
    assert apply(sim, namespace, v1alpha2_group("stored", replicas=4)).returncode == 0
    assert served(sim, namespace, "stored", V2)["spec"]["roles"][0]["replicas"] == 4

    # Started again: every conversion works, the refused create goes through.
    assert sim.webhook("start")["running"]
    assert served(sim, namespace, "stored", V1)["spec"]["roles"][0]["replicas"] == 4
    recreated = apply(sim, namespace, v1alpha1_group("fresh"))
    assert recreated.returncode == 0, recreated.stderr
    assert served(sim, namespace, "fresh", V2)["apiVersion"] == V2


async def test_the_orchestrator_deploys_and_reports_while_the_webhook_is_down(
    sim: SimCluster, kube: KubeClient, orchestrator: Any, namespace: str, webhook_restarted: None
) -> None:
    # The orchestrator reads and writes groups in the stored version and converts in-process: only the
    # users' v1alpha1 requests need the webhook, never its own.
    assert not sim.webhook("stop")["running"]
    solo = v1alpha2_group("solo")
    solo["spec"]["roles"] = solo["spec"]["roles"][:1]  # prefill: a StatefulSet of 2
    assert apply(sim, namespace, solo).returncode == 0
    groups = f"/apis/{V2}/namespaces/{namespace}/rolebasedgroups"
    objs = await wait_for(
        kube, groups, lambda o: "solo" in o and is_true(o["solo"], "Ready"), timeout=90, what="solo Ready"
    )
    assert objs["solo"]["status"]["phase"] == "Ready"
    assert objs["solo"]["status"]["roleStatuses"] == [
        {"name": "prefill", "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
    ]
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/solo-prefill")
    assert sts["spec"]["serviceName"] == "s-solo-prefill" and sts["status"]["readyReplicas"] == 2
