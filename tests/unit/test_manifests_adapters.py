"""The scaling adapter of a role, its selector, and what its generation says (pure)."""

from __future__ import annotations

from typing import Any

from rbg_flows.api import RoleBasedGroup
from rbg_flows.manifests.adapters import (
    SYNCED_ANNOTATION,
    adapter_replicas,
    adapter_selector,
    scaled_since_synced,
    scaling_adapter,
)
from rbg_flows.workflows.entity import uses_adapters

from .test_rollout_preview import load


def group() -> RoleBasedGroup:
    doc = load("scaling-adapter.yaml", "")
    doc["metadata"].update(namespace="ns", uid="u-1")
    return RoleBasedGroup.model_validate(doc)


def test_the_adapter_is_named_for_the_role_owned_by_the_group_and_holds_its_replicas() -> None:
    rbg = group()
    body = scaling_adapter(rbg, rbg.spec.role("decode"))
    assert body["metadata"]["name"] == "pd-autoscaled-decode"
    assert body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/role"] == "decode"
    assert body["spec"] == {"replicas": 1, "scaleTargetRef": {"name": "pd-autoscaled", "role": "decode"}}
    assert adapter_selector(rbg, "decode") == (
        "rolebasedgroup.workloads.x-k8s.io/name=pd-autoscaled,rolebasedgroup.workloads.x-k8s.io/role=decode"
    )


def adapter(generation: int, synced: int | None, replicas: int | None) -> dict[str, Any]:
    annotations = {} if synced is None else {SYNCED_ANNOTATION: str(synced)}
    return {
        "metadata": {"generation": generation, "annotations": annotations},
        "spec": {"replicas": replicas},
    }


def test_a_newer_generation_than_the_synced_one_is_a_scale() -> None:
    assert scaled_since_synced(adapter(2, 1, 3))
    assert not scaled_since_synced(adapter(2, 2, 3))
    assert scaled_since_synced(adapter(1, None, 3))  # never synced


def test_unset_replicas_adopt_the_role_s() -> None:
    role = group().spec.role("decode")
    assert adapter_replicas(adapter(1, 1, None), role) == 1
    assert adapter_replicas(adapter(1, 1, 4), role) == 4


def test_the_entity_sees_adapters_without_parsing() -> None:
    doc = load("scaling-adapter.yaml", "")
    assert uses_adapters(doc)
    doc["spec"]["roles"][1]["scalingAdapter"]["enable"] = False
    assert not uses_adapters(doc)
    assert not uses_adapters({"spec": {"roles": ["junk", {"scalingAdapter": "yes"}]}})
