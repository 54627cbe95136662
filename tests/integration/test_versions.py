"""Every example, written in one version, reads back from the real API server in the other exactly as
`api.conversion` says (the CRD schemas admit it, the server's defaulting adds nothing conversion did not),
and in its own version exactly as written: v1alpha2 stored, the sim's conversion webhook in between. No
orchestrator runs: the objects are only stored."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rbg_flows.api.conversion import V1ALPHA1, V1ALPHA2, convert
from rbg_flows.kube.client import KubeClient
from tests.unit.test_conversion import EXAMPLES, admitted, documents

pytestmark = pytest.mark.sim

PLURALS = {
    "RoleBasedGroup": "rolebasedgroups",
    "RoleBasedGroupSet": "rolebasedgroupsets",
    "ClusterEngineRuntimeProfile": "clusterengineruntimeprofiles",
}
# What the API server adds to metadata; everything else of an object is compared.
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "namespace")


def path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    scope = "" if kind == "ClusterEngineRuntimeProfile" else f"/namespaces/{namespace}"
    return f"/apis/{api_version}{scope}/{PLURALS[kind]}" + (f"/{name}" if name else "")


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for key in SERVER_METADATA:
        out["metadata"].pop(key, None)
    return out


@pytest.mark.parametrize(
    "example",
    sorted(
        [f"{p.name}" for p in EXAMPLES.glob("*.yaml")]
        + [f"v1alpha2/{p.name}" for p in (EXAMPLES / "v1alpha2").glob("*.yaml")]
    ),
)
async def test_an_example_reads_back_in_both_versions(
    kube: KubeClient, crds: list[str], namespace: str, example: str
) -> None:
    created: list[str] = []
    try:
        for doc in documents(EXAMPLES / example):
            # Cluster-scoped profiles are shared by the session's tests: a name of this test's own.
            doc["metadata"]["name"] = f"{doc['metadata']['name']}-{namespace[-5:]}"
            written = admitted(doc)
            other = V1ALPHA1 if doc["apiVersion"] == V1ALPHA2 else V1ALPHA2
            name = doc["metadata"]["name"]
            await kube.create(path(doc["apiVersion"], doc["kind"], namespace), doc)
            created.append(path(doc["apiVersion"], doc["kind"], namespace, name))
            same = await kube.get(path(doc["apiVersion"], doc["kind"], namespace, name))
            assert comparable(same) == written
            converted = await kube.get(path(other, doc["kind"], namespace, name))
            assert comparable(converted) == convert(written, other)
    finally:
        for url in created:
            await kube.delete(url)


async def test_a_v1alpha2_group_written_back_through_v1alpha1_is_unchanged(
    kube: KubeClient, crds: list[str], namespace: str
) -> None:
    # What needs kept copies: no workload-type annotation, gang scheduling without a timeout, a
    # restart policy on a standalone role (ext).
    group = {
        "apiVersion": V1ALPHA2,
        "kind": "RoleBasedGroup",
        "metadata": {
            "name": "native",
            "annotations": {"rbg.workloads.x-k8s.io/group-gang-scheduling": "true"},
        },
        "spec": {
            "roles": [
                {
                    "name": "engine",
                    "standalonePattern": {
                        "template": {"spec": {"containers": [{"name": "e", "image": "engine"}]}},
                        "restartPolicyConfig": {"type": "RecreateRBGOnPodRestart"},
                    },
                },
                {"name": "lws", "leaderWorkerPattern": {"size": 2, "template": {"spec": {"containers": []}}}},
            ]
        },
    }
    stored = admitted(group)
    await kube.create(path(V1ALPHA2, "RoleBasedGroup", namespace), group)
    read = await kube.get(path(V1ALPHA1, "RoleBasedGroup", namespace, "native"))
    assert read["spec"]["podGroupPolicy"] == {"kubeScheduling": {"scheduleTimeoutSeconds": 60}}
    assert [r["workload"]["kind"] for r in read["spec"]["roles"]] == ["StatefulSet", "LeaderWorkerSet"]
    assert read["spec"]["roles"][0]["restartPolicyConfig"]["type"] == "RecreateRBGOnPodRestart"
    # A v1alpha1 client's read-modify-write (here: only a label) keeps the v1alpha2 object as it was.
    read["metadata"].setdefault("labels", {})["touched"] = "yes"
    await kube.request("PUT", path(V1ALPHA1, "RoleBasedGroup", namespace, "native"), body=read)
    after = comparable(await kube.get(path(V1ALPHA2, "RoleBasedGroup", namespace, "native")))
    assert after == {**stored, "metadata": {**stored["metadata"], "labels": {"touched": "yes"}}}
