"""What a coordinated scale starts from: the replicas each role's workload has now, read once so the
operation's history records the start of its steps (a retry or replay steps from the same counts)."""

from __future__ import annotations

from temporalio import activity

from rbg_flows.activities.common import kube_call, resolve
from rbg_flows.api import workload_name
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.kinds import KINDS
from rbg_flows.messages import ReplicasRequest


class ScalingActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache | None = None):
        self.kube = kube
        self.cache = cache

    @activity.defn(name="read_replicas")
    async def read_replicas(self, req: ReplicasRequest) -> dict[str, int]:
        """role -> the replicas of its workload (0 when it has none yet), read from the API server, not
        the cache: a step must not start from counts a lagging watch still shows."""
        rbg = await resolve(self.kube, req.ref, self.cache)
        group = rbg.metadata.name or ""
        paths = {
            role: KINDS[rbg.spec.role(role).workload.key].path(req.key.namespace, workload_name(group, role))
            for role in req.roles
        }
        return {role: await self._replicas(path) for role, path in paths.items()}

    async def _replicas(self, path: str) -> int:
        obj = await kube_call(lambda: self.kube.get_or_none(path))
        return int(((obj or {}).get("spec") or {}).get("replicas") or 0)
