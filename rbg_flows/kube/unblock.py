"""Pods that hold a StatefulSet rollout hostage, and removing them.

With maxUnavailable (the MaxUnavailableStatefulSet gate) a StatefulSet counts unready pods as unavailable
and replaces nothing while that count is at its limit; without it, it waits for each replaced pod to be
Ready. Either way a pod of the *old* template that never becomes Ready (the bug the new template fixes)
stops the rollout for good: the "forced rollback" the Kubernetes documentation asks an operator to do by
hand. Such a pod, at an ordinal the StatefulSet is going to replace anyway, can be deleted without losing
anything (it serves nothing), so the waits do it for the user.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from rbg_flows.api.keys import POD_INDEX_LABEL, STS_REVISION_LABEL
from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.kube.errors import with_retries
from rbg_flows.kube.wait import is_ready

JSON = dict[str, Any]


def ordinal_of(pod: JSON) -> int | None:
    index = (pod["metadata"].get("labels") or {}).get(POD_INDEX_LABEL)
    if index is None:
        index = pod["metadata"]["name"].rsplit("-", 1)[-1]
    try:
        return int(index)
    except ValueError:
        return None


def blocking_pods(sts: JSON, pods: list[JSON]) -> list[JSON]:
    """Unready, not terminating pods of a StatefulSet that are not on its update revision, at ordinals it
    will move (partition <= ordinal < replicas). Only meaningful once the controller has observed the
    current spec (its update revision is then the current template's)."""
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    update = status.get("updateRevision")
    if not update or int(status.get("observedGeneration") or 0) < int(sts["metadata"].get("generation") or 0):
        return []
    partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)
    replicas = int(spec.get("replicas") or 0)
    out = []
    for pod in pods:
        i = ordinal_of(pod)
        if i is None or not partition <= i < replicas or pod["metadata"].get("deletionTimestamp"):
            continue
        if (pod["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) != update and not is_ready(pod):
            out.append(pod)
    return out


class Unblocker:
    """Deletes blocking pods, each incarnation once (a wait calls it on every change)."""

    def __init__(self, kube: KubeClient):
        self.kube = kube
        self.deleted: set[str] = set()

    async def __call__(self, sts: JSON, pods: list[JSON]) -> list[str]:
        names = []
        for pod in blocking_pods(sts, pods):
            uid = pod["metadata"]["uid"]
            if uid in self.deleted:
                continue
            await with_retries(partial(self._delete, pod))
            self.deleted.add(uid)
            names.append(pod["metadata"]["name"])
        return names

    async def _delete(self, pod: JSON) -> None:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        try:
            # The uid precondition: never the replacement the StatefulSet may already have made.
            await self.kube.delete(path, {"preconditions": {"uid": meta["uid"]}})
        except ApiError as e:
            if e.status != 409:  # 409: a precondition failed, that incarnation is gone already
                raise
