"""Gang scheduling at the edge: which gang objects the cluster serves (API discovery, re-read every
minute so installing scheduler-plugins or Volcano needs no worker restart), and the group's gang
objects kept as its spec asks: applied before any workload, resized with the group, deleted when the
policy goes. Built by `manifests.gang`.
"""

from __future__ import annotations

import time

from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import JSON, kube_call
from rbg_flows.api import RoleBasedGroup
from rbg_flows.kube.client import FIELD_MANAGER, ApiError, KubeClient
from rbg_flows.kube.kinds import GANG_KINDS, WorkloadKind
from rbg_flows.manifests.gang import ServedGangApis, gang_objects
from rbg_flows.manifests.labels import identity, owned_by

DISCOVERY_TTL_SECONDS = 60.0


class GangApis:
    def __init__(self, kube: KubeClient):
        self.kube = kube
        self._served: ServedGangApis | None = None
        self._read_at = 0.0

    async def served(self, fresh: bool = False) -> ServedGangApis:
        """What is served, as read within the last minute (`fresh`: read now)."""
        if fresh or self._served is None or time.monotonic() - self._read_at > DISCOVERY_TTL_SECONDS:
            found = {key: await self._serves(kind) for key, kind in GANG_KINDS.items()}
            self._served = ServedGangApis(**found)
            self._read_at = time.monotonic()
        return self._served

    async def _serves(self, kind: WorkloadKind) -> bool:
        listing = await kube_call(lambda: self.kube.get_or_none(f"/apis/{kind.group_version}"))
        resources = (listing or {}).get("resources") or []
        return any(r.get("name") == kind.plural for r in resources)

    async def sync(self, rbg: RoleBasedGroup) -> ServedGangApis:
        """Make the group's gang objects what its spec asks on this cluster; returns what is served
        (as validation just read it afresh for a group that asks for a gang)."""
        served = await self.served()
        namespace, name = identity(rbg)
        wanted = {obj["kind"] + "/" + obj["apiVersion"]: obj for obj in gang_objects(rbg, served)}
        for key, kind in GANG_KINDS.items():
            if not getattr(served, key):
                continue
            path = kind.path(namespace, name)
            body = wanted.get(f"{kind.label}/{kind.group_version}")
            current = await kube_call(lambda path=path: self.kube.get_or_none(path))  # type: ignore[misc]
            if body is None:
                if current is not None and owned_by(current, rbg.metadata.uid or ""):
                    await self._delete(path, current)
            elif kind.key == "workload":
                await self._replace_workload(path, body, current, rbg.metadata.uid or "")
            else:
                await kube_call(lambda path=path, body=body: self.kube.apply(path, body, FIELD_MANAGER))  # type: ignore[misc]
        return served

    async def _replace_workload(self, path: str, body: JSON, current: JSON | None, uid: str) -> None:
        # A Workload's pod groups are immutable: a new size is a new Workload. Pods name it, not its
        # uid, so the running ones stay in the gang and the new ones wait (unschedulable) for it.
        if current is not None:
            if current.get("spec", {}).get("podGroups") == body["spec"]["podGroups"]:
                return
            if not owned_by(current, uid):
                raise ApplicationError(
                    f"spec.podGroupPolicy: a Workload named {current['metadata']['name']} exists and is not "
                    "this group's: rename or delete it",
                    non_retryable=True,
                )
            await self._delete(path, current)

        async def create() -> None:
            try:
                await self.kube.create(path.rsplit("/", 1)[0], body)
            except ApiError as e:
                if e.status != 409:  # made by this call's earlier attempt, whose answer was lost
                    raise

        await kube_call(create)

    async def _delete(self, path: str, current: JSON) -> None:
        # Preconditioned on the object read: a namesake made since is never deleted.
        precondition = {"preconditions": {"uid": current["metadata"]["uid"]}}
        await kube_call(lambda: self.kube.delete(path, precondition))
