"""Applying a role's workload (and its headless Service) as built from the spec: server-side apply
under one field manager, so applying twice changes nothing."""

from __future__ import annotations

from rbg_flows.activities.common import kube_call, resolve
from rbg_flows.activities.gang import GangApis
from rbg_flows.activities.profiles import ProfileReader
from rbg_flows.activities.service_names import apply_headless_service, retire_legacy_service
from rbg_flows.api import STATEFULSET, workload_name
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.kinds import KINDS
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.messages import AppliedWorkload, RoleRequest


class ApplyActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache | None = None):
        self.kube = kube
        self.cache = cache
        self.profiles = ProfileReader(kube, cache)
        self.gang = GangApis(kube)

    async def apply(self, req: RoleRequest) -> AppliedWorkload:
        rbg = await resolve(self.kube, req.ref, self.cache)
        role = rbg.spec.role(req.role)
        if req.replicas is not None:
            role = role.model_copy(update={"replicas": req.replicas})
        kind = KINDS[role.workload.key]
        ns = req.key.namespace
        if kind.key == STATEFULSET:
            await apply_headless_service(self.kube, self.cache, rbg, role)
        name = workload_name(rbg.metadata.name or "", role.name)
        profiles = {}
        if role.engine_runtimes:
            # Read afresh, not from the cache: the pin of its NoUpdate profiles must not be missed.
            current = await kube_call(lambda: self.kube.get_or_none(kind.path(ns, name)))
            profiles = await self.profiles.for_role(rbg, role, current, req.ref.profiles)
        gang = await self.gang.served() if rbg.spec.pod_group_policy else None
        body = build_workload(rbg, role, profiles=profiles, placement=req.placement, gang=gang)
        applied = await kube_call(lambda: self.kube.apply(kind.path(ns, name), body, FIELD_MANAGER))
        if kind.key == STATEFULSET:
            await retire_legacy_service(self.kube, self.cache, ns, req.key.name, req.ref.uid, role.name)
        return AppliedWorkload(workload=name, generation=int(applied["metadata"].get("generation") or 0))
