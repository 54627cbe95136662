"""Revision hashes: one per role (the workload label `role-revision-hash-<role>`) and one per group spec
(ControllerRevision names and their `controller-revision-hash` label).

Both leave replicas out, so scaling is never mistaken for an upgrade. They hash a canonical JSON form
(model defaults left out, keys sorted), so a field written explicitly with its default value, or
defaulted by the API server, hashes like an omitted one, and every process computes the same value
(no Python `hash()`). The form of the value is the reference's: FNV-1a 32-bit, its decimal digits
spelled in Kubernetes' vowel-free alphabet (rand.SafeEncodeString).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from rbg_flows.api import RoleBasedGroupSpec, RoleSpec

# Role fields that never reach a built object, so changing them must not start an upgrade:
# replicas (a scale), dependencies (creation order only), scalingAdapter (the adapter object),
# restartPolicyConfig (the orchestrator's backoff).
_ROLE_FIELDS_NOT_HASHED: Final = ("replicas", "dependencies", "scalingAdapter", "restartPolicyConfig")

_SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET: Final = 0x811C9DC5
_FNV32_PRIME: Final = 0x01000193


# Where the fingerprints of RollingUpdate engine runtime profiles go in the hashed data; absent when a
# role uses none, so every hash from before profiles were served is unchanged.
_PROFILES_KEY: Final = "$engineRuntimeProfiles"


def role_revision_hash(
    spec: RoleBasedGroupSpec, role: RoleSpec, profiles: Mapping[str, str] | None = None
) -> str:
    """Hash of what the role's objects are built from: the role spec (without the fields above), the
    role template it references, so editing a shared template changes the hash of every role that uses
    it and of no other, and the fingerprints (`profiles`, by name) of the RollingUpdate engine runtime
    profiles it names, so a change of one is a new revision of the roles using it. NoUpdate profiles
    are not in `profiles`: their changes make no revision."""
    data = role.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    for key in _ROLE_FIELDS_NOT_HASHED:
        data.pop(key, None)
    # An unset restartPolicy and its default written out mean the same thing.
    data["restartPolicy"] = role.effective_restart_policy
    if role.template_ref is not None:
        data["$roleTemplate"] = spec.role_template(role.template_ref.name).template
    used = _used(profiles or {}, [rt.profile_name for rt in role.engine_runtimes])
    if used:
        data[_PROFILES_KEY] = used
    return content_hash(data)


def role_revision_hashes(
    spec: RoleBasedGroupSpec, profiles: Mapping[str, str] | None = None
) -> dict[str, str]:
    """role name -> role_revision_hash, for every role of the spec."""
    return {role.name: role_revision_hash(spec, role, profiles) for role in spec.roles}


def spec_revision_hash(spec: RoleBasedGroupSpec, profiles: Mapping[str, str] | None = None) -> str:
    """Hash of the whole spec with every role's replicas left out (equal for two specs that differ
    only by scale), and the fingerprints of the RollingUpdate profiles its roles name."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    for role in data.get("roles", []):
        role.pop("replicas", None)
    used = _used(profiles or {}, [rt.profile_name for role in spec.roles for rt in role.engine_runtimes])
    if used:
        data[_PROFILES_KEY] = used
    return content_hash(data)


def _used(profiles: Mapping[str, str], names: list[str]) -> dict[str, str]:
    return {name: profiles[name] for name in names if name in profiles}


def content_hash(data: Any) -> str:
    """Hash of a JSON value in the form above (keys sorted, so any process computes the same)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return safe_encode(str(fnv1a_32(canonical.encode())))


def fnv1a_32(data: bytes) -> int:
    value = _FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: no vowels, so hashes never spell words."""
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in text)
