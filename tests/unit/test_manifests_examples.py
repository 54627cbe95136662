"""The example groups the manifest tests share (a PD group with StatefulSets and a Deployment, the same
with LeaderWorkerSets), and end-to-end properties of building all their objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rbg_flows.api import RoleBasedGroup, validate_rbg
from rbg_flows.manifests import build_role_objects, discovery_configmap

NAMESPACE = "inference"
UID = "0b6c1f2e-1111-2222-3333-444455556666"

# The committed PD example itself, so a change to it is checked here too; the LWS fixture below is
# purpose-built (leader/worker patches with labels) for the template tests.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PD_MANIFEST = (EXAMPLES / "pd-disaggregation.yaml").read_text()


LWS_MANIFEST = """
apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroup
metadata:
  name: pd-lws
spec:
  roles:
    - name: prefill
      replicas: 1
      workload:
        apiVersion: leaderworkerset.x-k8s.io/v1
        kind: LeaderWorkerSet
      leaderWorkerSet:
        size: 2
        patchLeaderTemplate:
          metadata:
            labels: {lws-role: leader}
          spec:
            containers:
              - name: engine
                args: ["--disaggregation-mode", "prefill", "--role", "leader"]
        patchWorkerTemplate:
          spec:
            containers:
              - name: engine
                args: ["--disaggregation-mode", "prefill", "--role", "worker"]
      servicePorts:
        - name: http-api
          port: 8000
      template:
        spec:
          initContainers:
            - name: fetch-model
              image: busybox:1.36
          containers:
            - name: engine
              image: lmsysorg/sglang:v0.5.4
              resources:
                limits:
                  nvidia.com/gpu: "8"
    - name: router
      replicas: 1
      workload:
        apiVersion: apps/v1
        kind: Deployment
      template:
        spec:
          containers:
            - name: router
              image: lmsysorg/sglang:v0.5.4
"""


def make_rbg(manifest: str, **changes: Any) -> RoleBasedGroup:
    """The manifest as the watcher would see it (namespace and uid set), with `changes` merged into
    the role named by each key: make_rbg(PD_MANIFEST, prefill={"replicas": 5})."""
    doc = yaml.safe_load(manifest)
    doc["metadata"].update(namespace=NAMESPACE, uid=UID)
    for role in doc["spec"]["roles"]:
        role.update(changes.get(role["name"], {}))
    return RoleBasedGroup.model_validate(doc)


def pd_rbg(**changes: Any) -> RoleBasedGroup:
    return make_rbg(PD_MANIFEST, **changes)


def lws_rbg(**changes: Any) -> RoleBasedGroup:
    return make_rbg(LWS_MANIFEST, **changes)


def all_objects(rbg: RoleBasedGroup) -> list[dict[str, Any]]:
    objects = [obj for role in rbg.spec.roles for obj in build_role_objects(rbg, role)]
    return [*objects, discovery_configmap(rbg)]


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *[item for v in value.values() for item in _walk(v)]]
    if isinstance(value, list):
        return [value, *[item for v in value for item in _walk(v)]]
    return [value]


def test_examples_are_valid() -> None:
    assert validate_rbg(pd_rbg()) == []
    assert validate_rbg(lws_rbg()) == []


def test_objects_of_the_pd_example() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in all_objects(pd_rbg())]
    assert kinds == [
        ("StatefulSet", "pd-demo-prefill"),
        ("Service", "s-pd-demo-prefill"),
        ("StatefulSet", "pd-demo-decode"),
        ("Service", "s-pd-demo-decode"),
        ("Deployment", "pd-demo-router"),
        ("ConfigMap", "pd-demo"),
    ]


def test_lws_roles_get_no_service_of_ours() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in all_objects(lws_rbg())]
    assert kinds == [
        ("LeaderWorkerSet", "pd-lws-prefill"),
        ("Deployment", "pd-lws-router"),
        ("ConfigMap", "pd-lws"),
    ]


def test_objects_are_complete_apply_configurations() -> None:
    for rbg in (pd_rbg(), lws_rbg()):
        for obj in all_objects(rbg):
            assert {"apiVersion", "kind", "metadata"} <= obj.keys()
            assert "status" not in obj
            meta = obj["metadata"]
            assert meta["namespace"] == NAMESPACE
            assert meta["ownerReferences"][0]["uid"] == UID
            assert None not in _walk(obj), obj["metadata"]["name"]
            json.dumps(obj)  # plain JSON data, nothing else


def test_build_is_deterministic() -> None:
    first = json.dumps(all_objects(pd_rbg()) + all_objects(lws_rbg()), sort_keys=False)
    second = json.dumps(all_objects(pd_rbg()) + all_objects(lws_rbg()), sort_keys=False)
    assert first == second


def test_building_does_not_modify_the_model() -> None:
    rbg = lws_rbg()
    before = rbg.model_dump(mode="json")
    all_objects(rbg)
    assert rbg.model_dump(mode="json") == before
