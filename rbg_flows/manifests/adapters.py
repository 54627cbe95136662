"""The RoleBasedGroupScalingAdapter of a role (`scalingAdapter.enable`) and what its status says (pure)."""

from __future__ import annotations

from typing import Any

from rbg_flows.api import RoleBasedGroup, RoleSpec, workload_name
from rbg_flows.api.common import API_VERSION
from rbg_flows.api.scaling_adapter import KIND
from rbg_flows.manifests.labels import identity, object_meta, role_labels, role_selector
from rbg_flows.messages import ANNOTATION_PREFIX

JSON = dict[str, Any]
# The adapter generation whose replicas the role last took: a newer one was scaled (kubectl scale, an
# HPA); the same one with other replicas in the role means the group's spec changed under it.
SYNCED_ANNOTATION = f"{ANNOTATION_PREFIX}/adapter-synced-generation"


def adapter_name(rbg: RoleBasedGroup, role: RoleSpec | str) -> str:
    """`<rbg>-<role>`, the role's workload name (api.md)."""
    _, name = identity(rbg)
    return workload_name(name, role if isinstance(role, str) else role.name)


def scaling_adapter(rbg: RoleBasedGroup, role: RoleSpec) -> JSON:
    """A new adapter for `role`, owned by the group, holding the role's replicas."""
    _, name = identity(rbg)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(rbg, adapter_name(rbg, role), role_labels(rbg, role)),
        "spec": {"replicas": role.replicas, "scaleTargetRef": {"name": name, "role": role.name}},
    }


def adapter_selector(rbg: RoleBasedGroup, role: RoleSpec | str) -> str:
    """The label selector of the role's pods, as a scale subresource gives it to an HPA."""
    return ",".join(f"{k}={v}" for k, v in sorted(role_selector(rbg, role).items()))


def adapter_replicas(adapter: JSON, role: RoleSpec) -> int:
    """What the adapter asks of the role: its spec.replicas, or the role's when unset."""
    value = (adapter.get("spec") or {}).get("replicas")
    return role.replicas if value is None else int(value)


def scaled_since_synced(adapter: JSON) -> bool:
    """Whether the adapter changed since the role last took its replicas (or never has)."""
    meta = adapter["metadata"]
    synced = (meta.get("annotations") or {}).get(SYNCED_ANNOTATION)
    return synced is None or int(meta.get("generation") or 0) > int(synced)
