"""Status and Events: the group's status written through the status subresource, then its Event."""

from __future__ import annotations

from temporalio import activity

from rbg_flows.activities.common import JSON, groups_readable, kube_call, merge_conditions
from rbg_flows.activities.events import record_event
from rbg_flows.api import workload_name
from rbg_flows.api.conversion import internal_form
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, ApiError, KubeClient
from rbg_flows.kube.kinds import GROUPS, KINDS
from rbg_flows.messages import EventRecord, RbgKey, StatusUpdate
from rbg_flows.observability import operations


class StatusActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache):
        self.kube = kube
        self.cache = cache

    @activity.defn(name="report")
    async def report(self, upd: StatusUpdate) -> None:
        """Write the status, then post its Event (so `kubectl describe` never shows an Event ahead of the
        status it announces)."""
        if upd.phase or upd.conditions or upd.observed_generation is not None or upd.update_revision:
            await kube_call(lambda: self._write_status(upd))
        if upd.event is not None:
            await self.record_event(upd.event)
            # Once the Event is written: the metrics count what `kubectl get events` shows.
            await operations.record_from_activity(upd.event.reason)

    async def _write_status(self, upd: StatusUpdate) -> None:
        """Read, update and apply the whole status we own (a field left out of an apply would be removed).
        The read comes from the watch cache of groups, guarded by its resourceVersion: if the cache had
        not caught up with a write yet, the API server refuses the apply (409) and the status is read from
        the server and applied again. That saves a GET per report when the cache is current, as it is
        almost always (reports are seconds apart)."""
        path = GROUPS.path(upd.key.namespace, upd.key.name)
        cached = await self._cached(upd)
        if cached is not None:
            try:
                body = await self._status_body(upd, cached, guarded=True)
                await self.kube.apply(path + "/status", body, FIELD_MANAGER)
                return
            except ApiError as e:
                if e.status != 409:
                    raise
        obj = await self.kube.get_or_none(path)
        if obj is None or obj["metadata"]["uid"] != upd.uid:
            return  # deleted, or replaced by a new object of the same name: not ours to write
        await self.kube.apply(
            path + "/status", await self._status_body(upd, obj, guarded=False), FIELD_MANAGER
        )

    async def _cached(self, upd: StatusUpdate) -> JSON | None:
        """The group from the watch cache, if it has one for this uid (else the server is asked)."""
        if not await groups_readable(self.cache):
            return None
        obj = self.cache.get(GROUPS, upd.key.namespace, upd.key.name)
        return obj if obj is not None and obj["metadata"].get("uid") == upd.uid else None

    async def _status_body(self, upd: StatusUpdate, obj: JSON, *, guarded: bool) -> JSON:
        status: JSON = dict(obj.get("status") or {})
        generation = int(obj["metadata"].get("generation") or 0)
        status["conditions"] = merge_conditions(
            status.get("conditions") or [], upd.conditions, upd.observed_generation or generation
        )
        if upd.phase:
            status["phase"] = upd.phase
        if upd.observed_generation is not None:
            status["observedGeneration"] = upd.observed_generation
        if upd.workflow_id:
            status["workflowId"] = upd.workflow_id
        if upd.current_revision:
            status["currentRevision"] = upd.current_revision
        if upd.update_revision:
            status["updateRevision"] = upd.update_revision
        if upd.placement is not None:
            status["placement"] = upd.placement
        status["roleStatuses"] = await self._role_statuses(upd.key, internal_form(obj))
        meta: JSON = {"name": upd.key.name, "namespace": upd.key.namespace}
        if guarded:
            # A precondition: applied only over the version the status was computed from.
            meta["resourceVersion"] = obj["metadata"]["resourceVersion"]
        return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "status": status}

    async def _role_statuses(self, key: RbgKey, obj: JSON) -> list[JSON]:
        out = []
        for role in obj.get("spec", {}).get("roles") or []:
            kind = KINDS.get(_workload_key(role))
            replicas = int(role.get("replicas", 1))
            current = None
            # Served from the shared cache: the wait that just finished has the freshest view anyway.
            if kind is not None and await self.cache.ensure(kind):
                current = self.cache.get(kind, key.namespace, workload_name(key.name, role["name"]))
            st = (current or {}).get("status") or {}
            out.append(
                {
                    "name": role["name"],
                    "replicas": replicas,
                    "readyReplicas": int(st.get("readyReplicas") or 0),
                    "updatedReplicas": int(st.get("updatedReplicas") or 0),
                }
            )
        return out

    async def record_event(self, ev: EventRecord) -> None:
        await record_event(self.kube, ev)


def _workload_key(role: JSON) -> str:
    w = role.get("workload") or {}
    return f"{w.get('apiVersion', 'apps/v1')}/{w.get('kind', 'StatefulSet')}"
