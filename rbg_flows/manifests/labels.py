"""Label and annotation keys the reference controller puts on what it creates, and the metadata every
built object shares (identity of the group, selectors, the owner reference).

These strings are part of the contract (api.md): users select pods and workloads by them, so they
must stay byte-identical to RBG v0.4-v0.6.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rbg_flows.api import API_VERSION, RoleBasedGroup, RoleSpec
from rbg_flows.api.keys import (
    GROUP_NAME_LABEL,
    GROUP_UNIQUE_KEY_LABEL,
    ROLE_LABEL,
    ROLE_REVISION_LABEL_PREFIX,
)
from rbg_flows.api.rbg import KIND


def role_revision_label(role_name: str) -> str:
    """Key of the workload label carrying the role's revision hash."""
    return ROLE_REVISION_LABEL_PREFIX + role_name


def group_unique_key(namespace: str, name: str) -> str:
    """sha1 of "<namespace>/<name>" in hex: a label value (40 chars) that tells apart groups of the same
    name in different namespaces, used by exclusive-topology affinity."""
    return hashlib.sha1(f"{namespace}/{name}".encode(), usedforsecurity=False).hexdigest()


def identity(rbg: RoleBasedGroup) -> tuple[str, str]:
    """(namespace, name) of a group that exists in the API server; refuses one that does not, because
    every object built from it is namespaced and named after it."""
    name, namespace = rbg.metadata.name, rbg.metadata.namespace
    if not name or not namespace:
        raise ValueError("the RoleBasedGroup needs metadata.name and metadata.namespace to build objects")
    return namespace, name


def _role_name(role: RoleSpec | str) -> str:
    return role if isinstance(role, str) else role.name


def role_selector(rbg: RoleBasedGroup, role: RoleSpec | str) -> dict[str, str]:
    """Group + role labels: the headless Service selector, and how to list a role's pods."""
    _, name = identity(rbg)
    return {GROUP_NAME_LABEL: name, ROLE_LABEL: _role_name(role)}


def role_labels(rbg: RoleBasedGroup, role: RoleSpec | str) -> dict[str, str]:
    """The labels of every workload and pod of a role, and the workload selector.

    A workload selector is immutable, so this set must never change for an existing group.
    """
    namespace, name = identity(rbg)
    return {
        GROUP_NAME_LABEL: name,
        ROLE_LABEL: _role_name(role),
        GROUP_UNIQUE_KEY_LABEL: group_unique_key(namespace, name),
    }


def group_labels(rbg: RoleBasedGroup) -> dict[str, str]:
    """Labels of group-wide objects (the discovery ConfigMap)."""
    namespace, name = identity(rbg)
    return {GROUP_NAME_LABEL: name, GROUP_UNIQUE_KEY_LABEL: group_unique_key(namespace, name)}


def owner_reference(rbg: RoleBasedGroup) -> dict[str, Any]:
    """Controller reference to the group: garbage collection deletes what it owns with it, and
    blockOwnerDeletion keeps a foreground delete of the group waiting for them."""
    _, name = identity(rbg)
    if not rbg.metadata.uid:
        raise ValueError("the RoleBasedGroup needs metadata.uid to own objects")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": rbg.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether an object lists the owner with this uid (a group's objects, not a namesake's)."""
    return any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])


def object_meta(
    rbg: RoleBasedGroup,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """metadata of an object the group owns, in the group's namespace."""
    namespace, _ = identity(rbg)
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [owner_reference(rbg)]
    return meta
