"""The RoleBasedGroups of a RoleBasedGroupSet (pure): `<set>-<i>`, built from the set's group template in
the stored version (v1alpha2), so the template's labels and annotations reach the child as written.

A child carries the hash of the template it was built from: a set whose hash differs from a child's has
a template change still to roll to that child. The hash covers the whole template, roles' replicas
included (a template that changes only replicas still has to reach every child); the set's own
replicas are not in it (adding a child changes no other).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rbg_flows.api.common import API_VERSION_V1ALPHA2
from rbg_flows.api.conversion import V1ALPHA2, convert
from rbg_flows.api.keys import GROUPSET_INDEX_LABEL, GROUPSET_NAME_LABEL, SET_INDEX_LABEL, SET_NAME_LABEL
from rbg_flows.api.rbg import KIND as GROUP_KIND
from rbg_flows.api.rbgset import KIND as SET_KIND
from rbg_flows.api.rbgset import child_name
from rbg_flows.manifests.hashing import content_hash
from rbg_flows.messages import ANNOTATION_PREFIX

JSON = dict[str, Any]
TEMPLATE_HASH_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/set-template-hash"


def group_template(rbgs: Mapping[str, Any]) -> JSON:
    """The set's `spec.groupTemplate` (labels, annotations, spec), from a set in either version."""
    v2 = convert(rbgs, V1ALPHA2)
    template: JSON = (v2.get("spec") or {}).get("groupTemplate") or {}
    return template


def template_hash(template: Mapping[str, Any]) -> str:
    return content_hash(template)


def set_selector(set_name: str) -> str:
    """The label selector of the set's RoleBasedGroups: one object per group (status.selector)."""
    return f"{SET_NAME_LABEL}={set_name}"


def set_owner_reference(rbgs: Mapping[str, Any]) -> JSON:
    meta = rbgs["metadata"]
    return {
        "apiVersion": rbgs.get("apiVersion", API_VERSION_V1ALPHA2),
        "kind": SET_KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def set_child(rbgs: Mapping[str, Any], index: int) -> JSON:
    """The set's RoleBasedGroup `index`, whole (server-side applied: what the template drops, the
    child loses)."""
    meta = rbgs["metadata"]
    template = group_template(rbgs)
    labels = {
        **(template.get("labels") or {}),
        SET_NAME_LABEL: meta["name"],
        SET_INDEX_LABEL: str(index),
        GROUPSET_NAME_LABEL: meta["name"],
        GROUPSET_INDEX_LABEL: str(index),
    }
    annotations = {**(template.get("annotations") or {}), TEMPLATE_HASH_ANNOTATION: template_hash(template)}
    return {
        "apiVersion": API_VERSION_V1ALPHA2,
        "kind": GROUP_KIND,
        "metadata": {
            "name": child_name(meta["name"], index),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [set_owner_reference(rbgs)],
        },
        "spec": template.get("spec") or {},
    }


def child_index(child: Mapping[str, Any], set_name: str) -> int | None:
    """The index of one of the set's RoleBasedGroups: its label, when its name agrees with it."""
    raw = ((child.get("metadata") or {}).get("labels") or {}).get(SET_INDEX_LABEL, "")
    if not raw.isdigit() or child["metadata"].get("name") != child_name(set_name, int(raw)):
        return None
    return int(raw)


def child_template_hash(child: Mapping[str, Any]) -> str:
    return str(((child.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION, ""))


def child_ready(child: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a child group is Ready for its current generation, and if not, what its Ready condition
    says (empty while it has not reported on this generation)."""
    generation = int(child["metadata"].get("generation") or 0)
    status = child.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or int(ready.get("observedGeneration") or 0) < generation:
        return False, ""
    return ready.get("status") == "True", str(ready.get("message") or ready.get("reason") or "")
