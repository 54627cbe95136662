"""A placement decision in the pod templates: node affinity on domains, the user's own terms kept, an
instance kept together, exclusivity against other groups' placed pods only."""

from __future__ import annotations

import copy
from typing import Any

from rbg_flows.api.keys import GROUP_UNIQUE_KEY_LABEL, PLACED_LABEL
from rbg_flows.manifests.placement import place_workload
from rbg_flows.messages import PlacementTerm, RolePlacement

BLOCK = "rbg.x-k8s.io/rdma-block"


def _sts(affinity: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if affinity:
        spec["affinity"] = affinity
    return {"kind": "StatefulSet", "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}}


def _placed(required: bool = True, **kw: Any) -> RolePlacement:
    return RolePlacement(required=required, terms=[PlacementTerm(key=BLOCK, values=["b1"])], **kw)


def test_required_placement_is_anded_with_the_users_own_required_terms() -> None:
    theirs = {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}
    mine = {"key": BLOCK, "operator": "In", "values": ["b1"]}
    body = _sts(
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [theirs]}}}
    )
    before = copy.deepcopy(body)
    out = place_workload(body, _placed(), "g")
    assert body == before  # the input is not changed
    terms = out["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [*theirs["matchExpressions"], mine]}]
    assert out["spec"]["template"]["metadata"]["labels"] == {"a": "b", PLACED_LABEL: "true"}
    assert place_workload(out, _placed(), "g") == out  # applying twice adds nothing


def test_preferred_placement_is_a_full_weight_preference() -> None:
    out = place_workload(_sts(), _placed(required=False), "g")
    node = out["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    assert node == {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "preference": {"matchExpressions": [{"key": BLOCK, "operator": "In", "values": ["b1"]}]},
            }
        ]
    }


def test_an_instance_stays_together_and_exclusivity_excludes_only_other_groups_placed_pods() -> None:
    lws = {
        "kind": "LeaderWorkerSet",
        "spec": {"leaderWorkerTemplate": {"leaderTemplate": {"spec": {}}, "workerTemplate": {"spec": {}}}},
    }
    out = place_workload(lws, _placed(instance_key="nvidia.com/gpu.clique", exclusive_key=BLOCK), "me")
    for which in ("leaderTemplate", "workerTemplate"):
        affinity = out["spec"]["leaderWorkerTemplate"][which]["spec"]["affinity"]
        (together,) = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert together["matchLabelKeys"] == ["leaderworkerset.sigs.k8s.io/group-key"]
        assert together["topologyKey"] == "nvidia.com/gpu.clique"
        (apart,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert apart["topologyKey"] == BLOCK
        assert apart["labelSelector"]["matchExpressions"] == [
            {"key": PLACED_LABEL, "operator": "Exists"},
            {"key": GROUP_UNIQUE_KEY_LABEL, "operator": "NotIn", "values": ["me"]},
        ]


def test_no_placement_changes_nothing() -> None:
    body = _sts()
    assert place_workload(body, None, "g") is body
    assert place_workload(body, RolePlacement(required=True), "g") is body
