"""ControllerRevisions of a group: one per distinct spec with replicas left out (so scaling makes none),
named `<rbg>-<hash>`, numbered upwards, the newest `KEEP` kept (pure builders and choices)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rbg_flows.api import RoleBasedGroup
from rbg_flows.api.keys import CONTROLLER_REVISION_HASH_LABEL, GROUP_NAME_LABEL
from rbg_flows.manifests.hashing import spec_revision_hash
from rbg_flows.manifests.labels import owner_reference

KEEP = 10
# The fingerprints of the RollingUpdate engine runtime profiles a revision was built with (absent when
# none): a profile change is a revision whose spec is the same as the one before.
PROFILES_KEY = "engineRuntimeProfiles"


def revision_name(rbg_name: str, spec_hash: str) -> str:
    return f"{rbg_name}-{spec_hash}"


def revision_data(rbg: RoleBasedGroup, profiles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a revision records: the spec without replicas (a rollback keeps the current scale), and the
    profile fingerprints it was built with."""
    data = rbg.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for role in data.get("roles", []):
        role.pop("replicas", None)
    return {"spec": data, PROFILES_KEY: dict(profiles)} if profiles else {"spec": data}


def build_controller_revision(
    rbg: RoleBasedGroup, revision: int, profiles: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`profiles`: fingerprints of the RollingUpdate engine runtime profiles the group uses."""
    name = rbg.metadata.name or ""
    spec_hash = spec_revision_hash(rbg.spec, profiles)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(name, spec_hash),
            "namespace": rbg.metadata.namespace,
            "labels": {GROUP_NAME_LABEL: name, CONTROLLER_REVISION_HASH_LABEL: spec_hash},
            "ownerReferences": [owner_reference(rbg)],
        },
        "data": revision_data(rbg, profiles),
        "revision": revision,
    }


def next_revision(existing: Sequence[dict[str, Any]]) -> int:
    return max((int(r.get("revision", 0)) for r in existing), default=0) + 1


def to_prune(existing: Sequence[dict[str, Any]], keep_name: str, keep: int = KEEP) -> list[str]:
    """Names of the oldest revisions beyond the newest `keep`; the one in use is never among them."""
    ordered = sorted(existing, key=lambda r: int(r.get("revision", 0)), reverse=True)
    return [r["metadata"]["name"] for r in ordered[keep:] if r["metadata"]["name"] != keep_name]
