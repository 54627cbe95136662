"""The pod template a workload gets: the role's template plus the group's labels, environment,
discovery mount, exclusive-topology affinity and engine runtime profiles.

Nothing here depends on replicas, so a scale never changes a pod template (and never rolls pods).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from rbg_flows.api import RoleBasedGroup, RoleSpec
from rbg_flows.api.keys import (
    DISABLE_EXCLUSIVE_TOPOLOGY_ANNOTATION,
    EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GROUP_UNIQUE_KEY_LABEL,
    ROLE_DISABLE_EXCLUSIVE_ANNOTATION,
)
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.manifests.discovery import mount_discovery
from rbg_flows.manifests.engine_runtime import inject_engine_runtimes
from rbg_flows.manifests.env import inject_env, role_env
from rbg_flows.manifests.labels import group_unique_key, identity, role_labels

_TEMPLATE_PATHS = (
    ("spec", "template"),
    ("spec", "leaderWorkerTemplate", "leaderTemplate"),
    ("spec", "leaderWorkerTemplate", "workerTemplate"),
)


def pod_templates(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod templates of a built workload (one, or an LWS's leader and worker), to edit in place."""
    for path in _TEMPLATE_PATHS:
        node: Any = workload
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            yield node


def finish_pod_template(
    rbg: RoleBasedGroup,
    role: RoleSpec,
    template: dict[str, Any],
    profiles: Mapping[str, ClusterEngineRuntimeProfileSpec] | None = None,
) -> dict[str, Any]:
    """`template` (a resolved PodTemplateSpec) ready to embed in the role's workload; `profiles` (by
    name) are the engine runtime profiles the role names, resolved by the caller."""
    _, name = identity(rbg)
    source = copy.deepcopy(template)
    meta = source.pop("metadata", None) or {}
    out: dict[str, Any] = {"metadata": meta, **source}
    # Precedence: the template's own, then the role's, then the group's (the selector must match).
    meta["labels"] = {**(meta.get("labels") or {}), **role.labels, **role_labels(rbg, role)}
    annotations = {**(meta.get("annotations") or {}), **role.annotations}
    if annotations:
        meta["annotations"] = annotations
    out = _exclusive_topology(rbg, out)
    out = mount_discovery(out, name)
    # The reference's order: its sidecars come after the discovery mount (they do not get it) and
    # before the environment (they do get that).
    out = inject_engine_runtimes(out, role.name, role.engine_runtimes, profiles or {})
    return inject_env(out, role_env(name, role))


def _exclusive_topology(rbg: RoleBasedGroup, template: dict[str, Any]) -> dict[str, Any]:
    """With the group annotated `exclusive-topology: <node label key>`, the pods of the group share
    one domain of that key and keep every other group out of it.

    The affinity selects on the group-unique-key label, which role_labels puts on every pod.
    """
    group = rbg.metadata.annotations
    # v1alpha1's spelling, or the one the reference writes since v0.8 (what a v1alpha2 manifest carries).
    topology_key = group.get(EXCLUSIVE_TOPOLOGY_ANNOTATION) or group.get(GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION)
    annotations = template["metadata"].get("annotations") or {}
    exempt = annotations.get(DISABLE_EXCLUSIVE_TOPOLOGY_ANNOTATION) == "true" or bool(
        annotations.get(ROLE_DISABLE_EXCLUSIVE_ANNOTATION)  # the reference exempts on any value of its key
    )
    if not topology_key or exempt:
        return template
    template["metadata"]["annotations"] = {**annotations, EXCLUSIVE_TOPOLOGY_ANNOTATION: topology_key}
    return add_exclusive_affinity(template, group_unique_key(*identity(rbg)), topology_key)


def add_exclusive_affinity(template: dict[str, Any], unique_key: str, topology_key: str) -> dict[str, Any]:
    """The group's pods share one domain of `topology_key` and keep every other group out of it."""
    spec = template.setdefault("spec", {})
    affinity = spec.setdefault("affinity", {})
    same_group = {
        "labelSelector": {
            "matchExpressions": [{"key": GROUP_UNIQUE_KEY_LABEL, "operator": "In", "values": [unique_key]}]
        },
        "topologyKey": topology_key,
    }
    other_groups = {
        "labelSelector": {
            "matchExpressions": [
                {"key": GROUP_UNIQUE_KEY_LABEL, "operator": "Exists"},
                {"key": GROUP_UNIQUE_KEY_LABEL, "operator": "NotIn", "values": [unique_key]},
            ]
        },
        "topologyKey": topology_key,
    }
    for kind, term in (("podAffinity", same_group), ("podAntiAffinity", other_groups)):
        section = affinity.setdefault(kind, {})
        required = section.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
        # Idempotent: a template that already carries the term (e.g. written by hand) keeps one copy.
        if term not in required:
            required.append(term)
    return template
