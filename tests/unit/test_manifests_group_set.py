"""The groups of a RoleBasedGroupSet as built from it, and the set's conditions for what a sync found."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from rbg_flows.api import parse_rbg, parse_rbgs
from rbg_flows.manifests.group_set import (
    TEMPLATE_HASH_ANNOTATION,
    child_index,
    child_ready,
    child_template_hash,
    set_child,
)
from rbg_flows.messages import SetChild, SetView
from rbg_flows.workflows.group_set import conditions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def the_set(version: str = "") -> dict[str, Any]:
    path = EXAMPLES / version / "group-set.yaml"
    obj: dict[str, Any] = yaml.safe_load(path.read_text())
    obj["metadata"].update(namespace="inference", uid="set-uid", generation=1)
    return obj


def test_a_child_is_the_template_with_the_sets_labels_and_owner() -> None:
    child = set_child(the_set(), 2)
    meta = child["metadata"]
    assert (meta["name"], meta["namespace"]) == ("pd-fleet-2", "inference")
    assert meta["labels"] == {
        "rolebasedgroupset.workloads.x-k8s.io/name": "pd-fleet",
        "rolebasedgroupset.workloads.x-k8s.io/rbg-index": "2",
        "rbg.workloads.x-k8s.io/groupset-name": "pd-fleet",
        "rbg.workloads.x-k8s.io/groupset-index": "2",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "workloads.x-k8s.io/v1alpha1",
            "kind": "RoleBasedGroupSet",
            "name": "pd-fleet",
            "uid": "set-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert child_index(child, "pd-fleet") == 2
    assert child_index(child, "other") is None
    # The child's spec is the template's, in either version of the set.
    from_v1, errors = parse_rbg(child)
    assert errors == [] and from_v1 is not None
    assert [r.name for r in from_v1.spec.roles] == ["prefill", "decode"]
    from_v2, _ = parse_rbg(set_child(the_set("v1alpha2"), 2))
    assert from_v2 is not None and from_v2.spec == from_v1.spec


def test_the_template_hash_moves_with_the_template_not_with_the_sets_replicas() -> None:
    base = child_template_hash(set_child(the_set(), 0))
    scaled = the_set()
    scaled["spec"]["replicas"] = 7
    assert child_template_hash(set_child(scaled, 0)) == base
    changed = copy.deepcopy(the_set())
    changed["spec"]["template"]["roles"][1]["replicas"] = 2
    assert child_template_hash(set_child(changed, 0)) != base
    v2 = the_set("v1alpha2")
    v2["spec"]["groupTemplate"]["labels"] = {"team": "a"}
    labelled = set_child(v2, 0)
    assert labelled["metadata"]["labels"]["team"] == "a"
    assert labelled["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] != base


def test_a_child_is_ready_only_for_its_current_generation() -> None:
    child = set_child(the_set(), 0)
    child["metadata"]["generation"] = 3
    assert child_ready(child) == (False, "")
    child["status"] = {
        "conditions": [
            {"type": "Ready", "status": "True", "observedGeneration": 2, "reason": "AllRolesReady"}
        ]
    }
    assert child_ready(child) == (False, "")
    child["status"]["conditions"][0]["observedGeneration"] = 3
    assert child_ready(child) == (True, "AllRolesReady")


def test_a_set_past_its_size_limit_or_with_a_long_name_is_refused_by_field() -> None:
    big = the_set()
    big["spec"]["replicas"] = 1001
    _, errors = parse_rbgs(big)
    assert [e.path for e in errors] == ["spec.replicas"]
    long = the_set()
    long["metadata"]["name"] = "x" * 62
    _, errors = parse_rbgs(long)
    assert "metadata.name" in [e.path for e in errors]
    assert parse_rbgs(the_set("v1alpha2"))[1] == []


def child(index: int, *, current: bool = True, ready: bool = True, message: str = "") -> SetChild:
    return SetChild(index=index, name=f"s-{index}", current=current, ready=ready, message=message)


def test_the_sets_conditions_say_what_holds_it_back() -> None:
    ready = {c.type: c for c in conditions(SetView(replicas=2, children=[child(0), child(1)]))}
    assert (ready["Ready"].status, ready["Ready"].message) == ("True", "2/2 RoleBasedGroups ready")
    assert ready["InvalidSpec"].status == "False"
    rolling = conditions(SetView(replicas=2, children=[child(0), child(1, current=False)]))[0]
    assert (rolling.reason, rolling.message) == ("RollingUpdate", "1/2 RoleBasedGroups updated")
    waiting = conditions(
        SetView(replicas=2, children=[child(0), child(1, ready=False, message="decode 0/1")])
    )
    assert waiting[0].reason == "GroupsNotReady"
    assert waiting[0].message == "1/2 RoleBasedGroups ready (s-1: decode 0/1)"
    short = conditions(SetView(replicas=3, children=[child(0)]))[0]
    assert (short.status, short.message) == ("False", "1/3 RoleBasedGroups ready")
    held = conditions(SetView(replicas=1, conflicts=["s-0"]))[0]
    assert (held.reason, held.status) == ("NameConflict", "False")
    invalid = {c.type: c for c in conditions(SetView(invalid="spec.replicas: too many"))}
    assert invalid["InvalidSpec"].status == "True" and invalid["Ready"].message == "spec.replicas: too many"
