"""The ClusterEngineRuntimeProfiles a group's roles name, read for the activities that validate a spec,
record its revision or build its workloads: from the worker's watch cache of profiles when it can
answer, else one GET per profile (a worker whose role may not list them still works)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import JSON, kube_call
from rbg_flows.api import RoleBasedGroup, RoleSpec
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.api.validation import FieldError
from rbg_flows.kube.cache import WatchFailing, WorkloadCache
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.kinds import PROFILES
from rbg_flows.manifests.engine_runtime import (
    choose_profiles,
    group_profile_names,
    profile_names,
    profile_problems,
)

# How long a read waits for the profile informer's first list before asking the API server.
PROFILE_CACHE_WAIT_SECONDS = 2.0


@dataclass
class Resolved:
    """Profiles by name as found; `invalid` are those found that do not parse (name -> why)."""

    profiles: dict[str, ClusterEngineRuntimeProfileSpec] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)

    def problems(self, rbg: RoleBasedGroup) -> list[FieldError]:
        return profile_problems(rbg, self.profiles, self.invalid)


class ProfileReader:
    def __init__(self, kube: KubeClient, cache: WorkloadCache | None = None):
        self.kube = kube
        self.cache = cache

    async def read(self, names: Iterable[str]) -> Resolved:
        wanted = list(dict.fromkeys(names))
        out = Resolved()
        if not wanted:
            return out
        cached = await self._cache_ready()
        for name in wanted:
            body = self.cache.get(PROFILES, "", name) if cached and self.cache is not None else None
            if body is None:
                # Not cached may be not yet cached (a profile applied together with its group): the API
                # server says whether it exists, so a spec is never refused on a lagging watch.
                body = await kube_call(lambda name=name: self.kube.get_or_none(PROFILES.path("", name)))  # type: ignore[misc]
            if body is None:
                continue
            try:
                out.profiles[name] = ClusterEngineRuntimeProfileSpec.model_validate(body.get("spec") or {})
            except ValidationError as e:
                out.invalid[name] = "; ".join(
                    f"spec.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()
                )
        return out

    async def for_group(self, rbg: RoleBasedGroup) -> Resolved:
        return await self.read(group_profile_names(rbg))

    async def for_role(
        self, rbg: RoleBasedGroup, role: RoleSpec, current: JSON | None, intended: dict[str, str] | None
    ) -> dict[str, ClusterEngineRuntimeProfileSpec]:
        """The profiles to build the role's workload with (`engine_runtime.choose_profiles`): `current`
        is the live workload, `intended` the RollingUpdate fingerprints of the operation (SpecRef)."""
        names = profile_names(role)
        if not names:
            return {}
        live = (await self.read(names)).profiles
        chosen = choose_profiles(rbg.spec, role, live, current, intended)
        missing = [name for name in names if name not in chosen]
        if missing:
            # Deleted since the operation validated the spec, with nothing recorded to build from: the
            # API server will not bring it back, so retrying cannot help.
            raise ApplicationError(
                f"role {role.name!r}: ClusterEngineRuntimeProfile {', '.join(map(repr, missing))} not found",
                type="ProfileNotFound",
                non_retryable=True,
            )
        return chosen

    async def _cache_ready(self) -> bool:
        if self.cache is None:
            return False
        try:
            if not await self.cache.ensure(PROFILES, give_up_after=PROFILE_CACHE_WAIT_SECONDS):
                return False
        except WatchFailing:
            return False
        return self.cache.failure(PROFILES) is None
