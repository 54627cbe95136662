"""What kind of operation a new spec needs, compared with the spec last rolled out (pure).

The entity workflow keeps the fingerprint of the spec it last settled; a new generation is an
Upgrade when the spec without replicas changed (a new ControllerRevision), a Scale when only replicas
changed, and a Deploy when there is nothing to compare with (first deploy, or a spec that does not
parse, which Deploy then refuses with the field path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from rbg_flows.api import parse_rbg
from rbg_flows.manifests.hashing import role_revision_hashes, spec_revision_hash
from rbg_flows.messages import Fingerprint

OperationKind = Literal["deploy", "upgrade", "scale"]


def fingerprint(obj: dict[str, Any], profiles: Mapping[str, str] | None = None) -> Fingerprint | None:
    """The fingerprint of a RoleBasedGroup object built with these RollingUpdate engine runtime profiles
    (fingerprints by name), or None when it does not validate."""
    rbg, errors = parse_rbg(obj)
    if rbg is None or errors:
        return None
    return Fingerprint(
        spec_hash=spec_revision_hash(rbg.spec, profiles),
        role_hashes=role_revision_hashes(rbg.spec, profiles),
        replicas={role.name: role.replicas for role in rbg.spec.roles},
    )


def classify(applied: Fingerprint | None, new: Fingerprint | None) -> OperationKind:
    if applied is None or new is None:
        return "deploy"
    if new.spec_hash != applied.spec_hash:
        return "upgrade"
    if new.replicas != applied.replicas:
        return "scale"
    # Nothing the workloads are built from changed (e.g. only metadata): re-applying is cheap and
    # repairs anything that drifted meanwhile.
    return "deploy"


def changed_roles(applied: Fingerprint, new: Fingerprint) -> list[str]:
    """Roles present in both specs whose own hash changed: the ones an upgrade rolls."""
    return [r for r, h in new.role_hashes.items() if r in applied.role_hashes and applied.role_hashes[r] != h]


def upgrade_replicas(applied: Fingerprint, new: Fingerprint) -> dict[str, int]:
    """Replicas an upgrade rolls at: the old ones for roles that existed (upgrade first, then scale),
    the new ones for roles the new spec adds."""
    return {r: applied.replicas.get(r, n) for r, n in new.replicas.items()}
