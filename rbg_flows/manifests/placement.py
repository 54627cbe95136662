"""A placement decision written into a role's pod templates, so the scheduler enforces it.

Node affinity names domains (label values); Required becomes required node affinity, Preferred a
preferred term of full weight. A user's own required node-affinity terms are kept: ours is added to each
of them (the terms are ORed, their expressions ANDed), so the pod must satisfy both.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from rbg_flows.api import RoleBasedGroup
from rbg_flows.api.keys import GROUP_UNIQUE_KEY_LABEL, PLACED_LABEL
from rbg_flows.manifests.podtemplate import pod_templates
from rbg_flows.messages import RolePlacement

LWS_GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"


def recorded_placement(rbg: RoleBasedGroup, role: str) -> RolePlacement | None:
    """The role's placement as the last placing operation wrote it to `status.placement.roles`; none
    once the spec no longer asks for placement (the affinity goes with the next apply)."""
    asked = rbg.spec.placement is not None and rbg.spec.placement.policy != "None"
    placed = rbg.status.placement if rbg.status and asked else None
    roles = (placed.model_extra or {}).get("roles") if placed else None
    raw = roles.get(role) if isinstance(roles, dict) else None
    if raw is None:
        return None
    try:
        return RolePlacement.model_validate(raw)
    except ValidationError:
        return None  # a status edited by hand into something else: placement is redone, not crashed on


def place_workload(
    workload: dict[str, Any], placement: RolePlacement | None, unique_key: str
) -> dict[str, Any]:
    """`workload` with `placement` in each of its pod templates (a copy; unchanged when None)."""
    if placement is None or not (placement.terms or placement.exclusive_key):
        return workload
    out = copy.deepcopy(workload)
    for template in pod_templates(out):
        place_template(template, placement, unique_key)
    return out


def place_template(template: dict[str, Any], placement: RolePlacement, unique_key: str) -> dict[str, Any]:
    affinity = template.setdefault("spec", {}).setdefault("affinity", {})
    if placement.terms:
        _node_affinity(affinity.setdefault("nodeAffinity", {}), placement)
    if placement.instance_key:
        _instance_affinity(affinity.setdefault("podAffinity", {}), placement)
    if placement.exclusive_key:
        _exclusive(affinity.setdefault("podAntiAffinity", {}), placement.exclusive_key, unique_key)
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), PLACED_LABEL: "true"}
    return template


def _exclusive(section: dict[str, Any], key: str, unique_key: str) -> None:
    # No placed pod of another group in the domain. Only placed (GPU) pods: a group's CPU roles are not
    # placed and may land anywhere, and counting them would let one group's router, scheduled first,
    # lock another group out of the domain it was granted.
    term = {
        "labelSelector": {
            "matchExpressions": [
                {"key": PLACED_LABEL, "operator": "Exists"},
                {"key": GROUP_UNIQUE_KEY_LABEL, "operator": "NotIn", "values": [unique_key]},
            ]
        },
        "topologyKey": key,
    }
    listed = section.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
    if term not in listed:
        listed.append(term)


def _expressions(placement: RolePlacement) -> list[dict[str, Any]]:
    return [{"key": t.key, "operator": "In", "values": sorted(t.values)} for t in placement.terms]


def _node_affinity(section: dict[str, Any], placement: RolePlacement) -> None:
    ours = _expressions(placement)
    if not placement.required:
        preferred = section.setdefault("preferredDuringSchedulingIgnoredDuringExecution", [])
        for expr in ours:
            term = {"weight": 100, "preference": {"matchExpressions": [expr]}}
            if term not in preferred:
                preferred.append(term)
        return
    required = section.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    theirs = required.get("nodeSelectorTerms") or [{}]
    terms = []
    for term in theirs:
        for expr in ours:
            merged = copy.deepcopy(term)
            exprs = merged.setdefault("matchExpressions", [])
            if expr not in exprs:
                exprs.append(expr)
            if merged not in terms:
                terms.append(merged)
    required["nodeSelectorTerms"] = terms


def _instance_affinity(section: dict[str, Any], placement: RolePlacement) -> None:
    # Each instance's pods together: the key's value comes from the pod's own group-key label.
    # (A key may not be in both the selector and matchLabelKeys: the selector names the set's pods.)
    term = {
        "labelSelector": {"matchExpressions": [{"key": LWS_NAME_LABEL, "operator": "Exists"}]},
        "matchLabelKeys": [LWS_GROUP_KEY_LABEL],
        "topologyKey": placement.instance_key,
    }
    if placement.required:
        listed = section.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
        if term not in listed:
            listed.append(term)
    else:
        weighted = {"weight": 100, "podAffinityTerm": term}
        listed = section.setdefault("preferredDuringSchedulingIgnoredDuringExecution", [])
        if weighted not in listed:
            listed.append(weighted)
