"""The pod template a role runs: inline, or a shared role template with the role's patch on top, and
for LeaderWorkerSet roles the leader and worker variants."""

from __future__ import annotations

import copy
from typing import Any

from rbg_flows.api import RoleBasedGroupSpec, RoleSpec
from rbg_flows.manifests.smp import strategic_merge_patch


def resolve_pod_template(spec: RoleBasedGroupSpec, role: RoleSpec) -> dict[str, Any]:
    """The role's PodTemplateSpec before anything is injected: `template` as written, or
    `roleTemplates[templateRef.name].template` with `templatePatch` strategically merged onto it.

    KeyError when templateRef names no role template (validation refuses such a spec first).
    """
    if role.template_ref is not None:
        base = spec.role_template(role.template_ref.name).template
        return strategic_merge_patch(base, role.template_patch)
    # Neither set only passes validation for no served kind; an empty template then fails at apply
    # with the API server's own message, as it does in the reference.
    return copy.deepcopy(role.template or {})


def leader_worker_templates(
    spec: RoleBasedGroupSpec, role: RoleSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(leader, worker) templates of a LeaderWorkerSet role: the role template with
    `leaderWorkerSet.patchLeaderTemplate` / `patchWorkerTemplate` applied."""
    base = resolve_pod_template(spec, role)
    lws = role.leader_worker_set
    leader_patch = lws.patch_leader_template if lws is not None else None
    worker_patch = lws.patch_worker_template if lws is not None else None
    return strategic_merge_patch(base, leader_patch), strategic_merge_patch(base, worker_patch)
