"""Engine runtime profiles in a role's pods (pure): the init containers, sidecars and volumes of the
ClusterEngineRuntimeProfiles a role names in `engineRuntimes`, merged into its pod template by name.

The merge is the reference's (v0.8), so a manifest written for it runs the same pods here:

- for each engineRuntime in order, the profile's initContainers, containers and volumes are appended
  unless the template already has one of that name (the role's own wins, and the first profile to bring
  a name wins over later ones);
- then the engineRuntime's `containers` are overrides of the profile's containers of the same name (an
  override naming no container of that profile is ignored): their `args` are appended to the container's
  and their `env` added to it, a variable of the same name replacing the container's in place (the
  reference appends it and the later duplicate wins in the pod; server-side apply refuses duplicate
  names, so it is replaced instead). Nothing else of an override is read, `command` included: the
  reference ignores it too;
- `injectContainers` is accepted and has no effect, as in the reference's controller.

What a profile change does to a role depends on its `updateStrategy` (see `docs/api.md`):
RollingUpdate profiles enter the role's revision hash through their fingerprint, so a change is a new
revision rolled out by the coordinated upgrade (and until that upgrade, no other operation rolls it in);
a NoUpdate profile's content is pinned to the role revision it was first applied with, so a change
reaches the role only with its next revision (any change of the role's spec). What a workload was built
with is recorded on it (`PINNED_ANNOTATION`): `choose_profiles` says which content a build takes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from rbg_flows.api import RoleBasedGroup, RoleBasedGroupSpec, RoleSpec
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.api.rbg import EngineRuntime
from rbg_flows.api.validation import FieldError
from rbg_flows.manifests.hashing import role_revision_hash
from rbg_flows.manifests.labels import role_revision_label
from rbg_flows.messages import ANNOTATION_PREFIX, profile_fingerprint

JSON = dict[str, Any]
Profiles = Mapping[str, ClusterEngineRuntimeProfileSpec]

ROLLING_UPDATE: Final = "RollingUpdate"
NO_UPDATE: Final = "NoUpdate"

# The profiles a workload was built with, as JSON `{name: spec}`: what a rebuild injects instead of a
# profile's current content when it must not roll it in (see choose_profiles).
PINNED_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/engine-runtime-profiles"

# Bounds (checked with the spec's other problems, before anything is built). Every role's template is
# built several times per operation (and twice for a LeaderWorkerSet), and the pinned copy is an
# annotation, which Kubernetes limits to 256 KiB together with the others: the profiles of one role
# together stay well inside that. Real profiles are a few KiB.
MAX_ENGINE_RUNTIMES: Final = 16
MAX_ROLE_PROFILE_BYTES: Final = 128 * 1024


class ProfileNotFound(ValueError):
    """A role names a profile that was not resolved (validation reports it first, with its path)."""

    def __init__(self, role: str, name: str):
        super().__init__(f'role {role!r}: ClusterEngineRuntimeProfile "{name}" not found')
        self.name = name


def profile_names(role: RoleSpec) -> list[str]:
    """The profiles a role names, in order, each once."""
    return list(dict.fromkeys(rt.profile_name for rt in role.engine_runtimes))


def group_profile_names(rbg: RoleBasedGroup) -> list[str]:
    """The profiles any role of the group names, each once, in the order roles name them."""
    return list(dict.fromkeys(name for role in rbg.spec.roles for name in profile_names(role)))


def inject_engine_runtimes(
    template: JSON, role_name: str, runtimes: Sequence[EngineRuntime], profiles: Profiles
) -> JSON:
    """A copy of the pod template with the profiles' containers, init containers and volumes merged in
    (the rules above); ProfileNotFound when `profiles` lacks one. Building from the same template and
    profiles always gives the same result."""
    out = copy.deepcopy(template)
    if not runtimes:
        return out
    spec = out.setdefault("spec", {})
    for runtime in runtimes:
        profile = profiles.get(runtime.profile_name)
        if profile is None:
            raise ProfileNotFound(role_name, runtime.profile_name)
        for key, items in (
            ("initContainers", profile.init_containers),
            ("containers", profile.containers),
            ("volumes", profile.volumes),
        ):
            _append_missing(spec, key, items)
        own = {c.get("name") for c in (*profile.init_containers, *profile.containers)}
        by_name = {c.get("name"): c for c in spec.get("containers") or []}
        for override in runtime.containers:
            target = by_name.get(override.get("name")) if override.get("name") in own else None
            if target is not None:
                _override(target, override)
    return out


def _append_missing(spec: JSON, key: str, items: Sequence[JSON]) -> None:
    if not items:
        return
    present = spec.setdefault(key, [])
    names = {item.get("name") for item in present}
    for item in items:
        if item.get("name") not in names:
            present.append(copy.deepcopy(item))
            names.add(item.get("name"))


def _override(container: JSON, override: JSON) -> None:
    if override.get("args"):
        container["args"] = [*(container.get("args") or []), *copy.deepcopy(override["args"])]
    if override.get("env"):
        env = list(container.get("env") or [])
        index = {var.get("name"): i for i, var in enumerate(env)}
        for var in override["env"]:
            if var.get("name") in index:
                env[index[var.get("name")]] = copy.deepcopy(var)
            else:
                index[var.get("name")] = len(env)
                env.append(copy.deepcopy(var))
        container["env"] = env


def rolling_fingerprints(role: RoleSpec, profiles: Profiles) -> dict[str, str]:
    """Fingerprints of the RollingUpdate profiles the role names: what enters its revision hash."""
    return {
        name: profile_fingerprint(profiles[name])
        for name in profile_names(role)
        if name in profiles and profiles[name].update_strategy == ROLLING_UPDATE
    }


def group_fingerprints(rbg: RoleBasedGroup, profiles: Profiles) -> dict[str, str]:
    """Fingerprints of the RollingUpdate profiles any role of the group names."""
    return {k: v for role in rbg.spec.roles for k, v in rolling_fingerprints(role, profiles).items()}


def pinned_annotation(role: RoleSpec, profiles: Profiles) -> str | None:
    """The annotation value recording the profiles the role is built with, None if it uses none."""
    pinned = {
        name: profiles[name].model_dump(mode="json", by_alias=True, exclude_defaults=True)
        for name in profile_names(role)
        if name in profiles
    }
    return json.dumps(pinned, sort_keys=True, separators=(",", ":")) if pinned else None


def pinned_profiles(current: JSON | None) -> dict[str, ClusterEngineRuntimeProfileSpec]:
    """The profiles a live workload records it was built with (none when it records nothing readable)."""
    raw = (((current or {}).get("metadata") or {}).get("annotations") or {}).get(PINNED_ANNOTATION)
    try:
        recorded = json.loads(raw) if raw else {}
    except ValueError:
        return {}  # not ours to trust: built afresh (a new record is written with it)
    out: dict[str, ClusterEngineRuntimeProfileSpec] = {}
    for name, spec in recorded.items() if isinstance(recorded, dict) else ():
        try:
            out[name] = ClusterEngineRuntimeProfileSpec.model_validate(spec)
        except ValidationError:
            continue
    return out


def choose_profiles(
    spec: RoleBasedGroupSpec,
    role: RoleSpec,
    live: Profiles,
    current: JSON | None,
    intended: Mapping[str, str] | None,
) -> dict[str, ClusterEngineRuntimeProfileSpec]:
    """The profiles to build the role with, from the profiles as they are now (`live`), what the live
    workload `current` was built with, and the RollingUpdate fingerprints the operation builds with
    (`intended`; None: as they are now):

    - a RollingUpdate profile: its current content when it is the intended one (or nothing is intended),
      else the recorded content when that is (the profile changed after the operation started: the
      change is the next operation's, and this one must not roll it in), else its current content;
    - a NoUpdate profile: the recorded content while the workload is at the role revision being built
      (a scale, a repair, another role's upgrade), else its current content (a new revision of the role);
    - a profile that no longer exists: the recorded content (refused by validation before any new build).
    """
    recorded = pinned_profiles(current)
    out: dict[str, ClusterEngineRuntimeProfileSpec] = {}
    for name in profile_names(role):
        now, then = live.get(name), recorded.get(name)
        if now is None:
            if then is not None:
                out[name] = then
            continue
        out[name] = now
        if now.update_strategy != ROLLING_UPDATE:
            continue
        want = (intended or {}).get(name)
        stale = want is not None and profile_fingerprint(now) != want
        if stale and then is not None and profile_fingerprint(then) == want:
            out[name] = _as(then, now)
    labels = ((current or {}).get("metadata") or {}).get("labels") or {}
    label = labels.get(role_revision_label(role.name))
    if label is not None and label == role_revision_hash(spec, role, rolling_fingerprints(role, out)):
        for name in profile_names(role):
            now, then = live.get(name), recorded.get(name)
            if now is not None and now.update_strategy == NO_UPDATE and then is not None:
                out[name] = _as(then, now)
    return out


def _as(
    recorded: ClusterEngineRuntimeProfileSpec, now: ClusterEngineRuntimeProfileSpec
) -> ClusterEngineRuntimeProfileSpec:
    """The recorded content under the profile's current strategy (which decides the hash and the pin)."""
    return recorded.model_copy(update={"update_strategy": now.update_strategy})


def profile_problems(
    rbg: RoleBasedGroup, profiles: Profiles, invalid: Mapping[str, str] | None = None
) -> list[FieldError]:
    """What keeps the group's profiles from being injected, each at the path of the reference to it: a
    missing profile (named), one that does not parse (`invalid`: name -> why), too many engineRuntimes
    in a role, or a role's profiles too large together."""
    invalid = invalid or {}
    problems: list[FieldError] = []
    for i, role in enumerate(rbg.spec.roles):
        runtimes = role.engine_runtimes
        if len(runtimes) > MAX_ENGINE_RUNTIMES:
            problems.append(
                FieldError(
                    path=f"spec.roles[{i}].engineRuntimes",
                    message=f"{len(runtimes)} engine runtimes, more than {MAX_ENGINE_RUNTIMES}",
                )
            )
            continue
        for j, runtime in enumerate(runtimes):
            name = runtime.profile_name
            if name in invalid:
                message = f'ClusterEngineRuntimeProfile "{name}" is invalid: {invalid[name]}'
            elif name not in profiles:
                message = f'ClusterEngineRuntimeProfile "{name}" not found'
            else:
                continue
            problems.append(
                FieldError(path=f"spec.roles[{i}].engineRuntimes[{j}].profileName", message=message)
            )
        size = sum(profile_bytes(profiles[name]) for name in profile_names(role) if name in profiles)
        if size > MAX_ROLE_PROFILE_BYTES:
            problems.append(
                FieldError(
                    path=f"spec.roles[{i}].engineRuntimes",
                    message=f"the profiles of role {role.name!r} are {size} bytes together, more than "
                    f"{MAX_ROLE_PROFILE_BYTES}",
                )
            )
    return problems


def profile_bytes(spec: ClusterEngineRuntimeProfileSpec) -> int:
    """Size of a profile's spec as compact JSON: linear in the object, which the API server bounds."""
    return len(json.dumps(spec.model_dump(mode="json", by_alias=True), separators=(",", ":")))
