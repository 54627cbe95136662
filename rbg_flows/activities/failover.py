"""A failover's pods: which ones the roles have now, and deleting exactly those (uid preconditions), so a
retried or replayed failover never deletes a pod it made itself."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from rbg_flows.activities.common import delete_exactly, kube_call
from rbg_flows.api.keys import GROUP_NAME_LABEL, ROLE_LABEL
from rbg_flows.kube.client import KubeClient
from rbg_flows.messages import DeletePods, PodRef, RolePodsRequest

JSON = dict[str, Any]


class FailoverActivities:
    def __init__(self, kube: KubeClient):
        self.kube = kube

    @activity.defn(name="role_pods")
    async def role_pods(self, req: RolePodsRequest) -> dict[str, list[PodRef]]:
        """role -> its live pods (read from the API server: the cache may not have the newest)."""
        ns = req.key.namespace
        out: dict[str, list[PodRef]] = {}
        for role in req.roles:
            listed = await self._pods(ns, f"{GROUP_NAME_LABEL}={req.key.name},{ROLE_LABEL}={role}")
            out[role] = sorted(
                (
                    PodRef(name=p["metadata"]["name"], uid=p["metadata"]["uid"])
                    for p in listed["items"]
                    if not p["metadata"].get("deletionTimestamp") and not _replacement(req, p)
                ),
                key=lambda p: p.name,
            )
        return out

    async def _pods(self, ns: str, selector: str) -> JSON:
        return await kube_call(lambda: self.kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector))

    @activity.defn(name="delete_pods")
    async def delete_pods(self, req: DeletePods) -> int:
        """Delete these pods, each only if it is still the same pod (a pod re-made under its name by its
        controller is not touched); returns how many this call deleted."""
        deleted = 0
        for pod in req.pods:
            path = f"/api/v1/namespaces/{req.key.namespace}/pods/{pod.name}"
            deleted += int(await delete_exactly(self.kube, path, pod.uid))
        return deleted


def _replacement(req: RolePodsRequest, pod: JSON) -> bool:
    """Whether the pod is the failed one's replacement (a StatefulSet or LeaderWorkerSet re-makes it under
    its name): it is new already. A Deployment's replacement has another name and is recreated once more;
    telling it from a pod that was there before would need a clock finer than creation times."""
    meta = pod["metadata"]
    return req.failed is not None and meta["name"] == req.failed.name and meta["uid"] != req.failed.uid
