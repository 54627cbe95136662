"""Environment variables every container of a role gets, so an engine knows its group, role and
ordinal without asking the API server.

The injected variables go first, so user variables can reference them with `$(ROLE_INDEX)`; a user
variable with the same name is dropped (the injected value wins, as in the reference). Replica
counts are never injected: the pod template must not change when a role scales.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from rbg_flows.api import LEADERWORKERSET, STATEFULSET, RoleSpec
from rbg_flows.api.keys import POD_INDEX_LABEL

GROUP_NAME: Final = "GROUP_NAME"
ROLE_NAME: Final = "ROLE_NAME"
ROLE_INDEX: Final = "ROLE_INDEX"
# RBG v0.7 renamed the variables with this prefix; both sets are injected so engines written for
# either release work.
RBG_PREFIX: Final = "RBG_"

# Roles whose pods have a stable ordinal. LeaderWorkerSet pods are created by StatefulSets too, so
# the same label gives a leader its group index and a worker its index within the group.
_INDEXED_WORKLOADS: Final = (STATEFULSET, LEADERWORKERSET)


def role_env(rbg_name: str, role: RoleSpec) -> list[dict[str, Any]]:
    """The variables injected into the role's containers, in order."""
    base: list[tuple[str, dict[str, Any]]] = [
        (GROUP_NAME, {"value": rbg_name}),
        (ROLE_NAME, {"value": role.name}),
    ]
    if role.workload.key in _INDEXED_WORKLOADS:
        field_path = f"metadata.labels['{POD_INDEX_LABEL}']"
        base.append((ROLE_INDEX, {"valueFrom": {"fieldRef": {"fieldPath": field_path}}}))
    return [
        {"name": prefix + name, **copy.deepcopy(source)}
        for prefix in ("", RBG_PREFIX)
        for name, source in base
    ]


def inject_env(pod_template: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of the template with `env` first in every container and init container."""
    out = copy.deepcopy(pod_template)
    names = {var["name"] for var in env}
    spec = out.get("spec") or {}
    for list_key in ("initContainers", "containers"):
        for container in spec.get(list_key) or []:
            own = [var for var in container.get("env") or [] if var.get("name") not in names]
            container["env"] = copy.deepcopy(env) + own
    return out
