"""Which lists of a PodTemplateSpec a strategic-merge patch merges, and by which key.

Kubernetes keeps this in Go struct tags (`patchStrategy:"merge" patchMergeKey:"..."` in k8s.io/api
core/v1 and apimachinery meta/v1); this is the same table for the types a pod template contains.
Every list not named here is atomic: a patch replaces it whole (args, tolerations, readinessGates,
affinity terms, envFrom, ...). Maps are always merged key by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True)
class ListMerge:
    """A list merged item by item: maps matched by `key`, scalars (key None) as a set."""

    key: str | None
    items: PatchMeta


@dataclass(frozen=True)
class PatchMeta:
    """Patch metadata of one object type: its merged lists and the types of its nested objects."""

    lists: dict[str, ListMerge] = field(default_factory=dict)
    objects: dict[str, PatchMeta] = field(default_factory=dict)

    def list_merge(self, key: str) -> ListMerge | None:
        return self.lists.get(key)

    def object(self, key: str) -> PatchMeta:
        # Free-form and unknown objects merge key by key with only atomic lists inside.
        return self.objects.get(key, LEAF)

    def list_items(self, key: str) -> PatchMeta:
        merge = self.lists.get(key)
        return merge.items if merge is not None else LEAF


LEAF: Final = PatchMeta()

OBJECT_META: Final = PatchMeta(
    lists={
        "finalizers": ListMerge(None, LEAF),
        "ownerReferences": ListMerge("uid", LEAF),
    }
)

CONTAINER: Final = PatchMeta(
    lists={
        "ports": ListMerge("containerPort", LEAF),
        "env": ListMerge("name", LEAF),
        "volumeMounts": ListMerge("mountPath", LEAF),
        "volumeDevices": ListMerge("devicePath", LEAF),
    }
)

POD_SPEC: Final = PatchMeta(
    lists={
        # volumes and resourceClaims are "merge,retainKeys": merged by name; $retainKeys is honoured
        # wherever a patch carries it.
        "volumes": ListMerge("name", LEAF),
        "initContainers": ListMerge("name", CONTAINER),
        "containers": ListMerge("name", CONTAINER),
        "ephemeralContainers": ListMerge("name", CONTAINER),
        "imagePullSecrets": ListMerge("name", LEAF),
        "hostAliases": ListMerge("ip", LEAF),
        # Strategic merge keys these by topologyKey alone (server-side apply adds whenUnsatisfiable).
        "topologySpreadConstraints": ListMerge("topologyKey", LEAF),
        "schedulingGates": ListMerge("name", LEAF),
        "resourceClaims": ListMerge("name", LEAF),
    }
)

POD_TEMPLATE_SPEC: Final = PatchMeta(objects={"metadata": OBJECT_META, "spec": POD_SPEC})
"""Patch metadata of a PodTemplateSpec (`{metadata, spec}`)."""
