"""A RoleBasedGroupSet's groups: created and deleted to match spec.replicas (the highest indices go
first), updated one at a time to the set's template, waited for, and counted into the set's status.

Every step reads the set from the API server and checks its uid, so a step of a deleted set, or of an
earlier set of the same name, changes nothing. A RoleBasedGroup the set does not own is never touched,
even when it holds one of the set's names: the set reports the conflict instead.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from rbg_flows.activities.common import (
    JSON,
    beat,
    delete_exactly,
    groups_readable,
    kube_call,
    merge_conditions,
)
from rbg_flows.activities.events import record_event
from rbg_flows.api import child_name, format_errors, parse_rbgs
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, MERGE, KubeClient
from rbg_flows.kube.kinds import GROUPS, SETS
from rbg_flows.manifests.group_set import (
    child_index,
    child_ready,
    child_template_hash,
    group_template,
    set_child,
    set_selector,
    template_hash,
)
from rbg_flows.manifests.labels import owned_by
from rbg_flows.messages import SetChild, SetChildUpdate, SetChildWait, SetRef, SetStatusUpdate, SetView

POLL_SECONDS = 1.0


def child_view(child: JSON, index: int, wanted_hash: str) -> SetChild:
    ready, message = child_ready(child)
    return SetChild(
        index=index,
        name=child["metadata"]["name"],
        generation=int(child["metadata"].get("generation") or 0),
        current=child_template_hash(child) == wanted_hash,
        ready=ready,
        message=message,
    )


class GroupSetActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache):
        self.kube = kube
        self.cache = cache

    async def _set(self, ref: SetRef) -> JSON | None:
        obj = await kube_call(lambda: self.kube.get_or_none(SETS.path(ref.key.namespace, ref.key.name)))
        return obj if obj is not None and obj["metadata"]["uid"] == ref.uid else None

    @activity.defn(name="sync_set")
    async def sync_set(self, ref: SetRef) -> SetView:
        ns, name = ref.key.namespace, ref.key.name
        obj = await self._set(ref)
        if obj is None:
            return SetView(gone=True)
        generation = int(obj["metadata"].get("generation") or 1)
        listed = await kube_call(
            lambda: self.kube.get(GROUPS.collection(ns), labelSelector=set_selector(name))
        )
        ours: dict[int, JSON] = {}
        for child in listed["items"]:
            index = child_index(child, name)
            if index is not None and owned_by(child, ref.uid):
                ours[index] = child
        rbgs, errors = parse_rbgs(obj)
        if rbgs is None or errors:
            wanted = template_hash(group_template(obj)) if rbgs is not None else ""
            return SetView(
                generation=generation,
                invalid=format_errors(errors),
                children=[child_view(c, i, wanted) for i, c in sorted(ours.items())],
            )
        replicas = rbgs.spec.replicas
        wanted = template_hash(group_template(obj))
        view = SetView(generation=generation, replicas=replicas)
        for index in sorted((i for i in ours if i >= replicas), reverse=True):
            await self._delete(ns, ours.pop(index))
            view.deleted.append(child_name(name, index))
        for index in range(replicas):
            if index in ours:
                continue
            made = await self._create(obj, index, ref.uid)
            if made is None:
                view.conflicts.append(child_name(name, index))
            else:
                ours[index] = made
                view.created.append(child_name(name, index))
        view.children = [child_view(c, i, wanted) for i, c in sorted(ours.items())]
        return view

    async def _create(self, rbgs: JSON, index: int, set_uid: str) -> JSON | None:
        """The child applied, unless a RoleBasedGroup the set does not own holds its name (None)."""
        body = set_child(rbgs, index)
        path = GROUPS.path(body["metadata"]["namespace"], body["metadata"]["name"])
        existing = await kube_call(lambda: self.kube.get_or_none(path))
        if existing is not None and not owned_by(existing, set_uid):
            return None
        applied: JSON = await kube_call(lambda: self.kube.apply(path, body, FIELD_MANAGER))
        return applied

    async def _delete(self, ns: str, child: JSON) -> None:
        meta = child["metadata"]
        # Only the child we listed; the garbage collector removes its workloads after it.
        await delete_exactly(self.kube, GROUPS.path(ns, meta["name"]), meta["uid"], "Background")

    @activity.defn(name="update_set_child")
    async def update_set_child(self, upd: SetChildUpdate) -> SetChild:
        """The child `index` applied from the set's template as it is now."""
        obj = await self._set(upd)
        name = child_name(upd.key.name, upd.index)
        if obj is None:
            return SetChild(index=upd.index, name=name)
        made = await self._create(obj, upd.index, upd.uid)
        if made is None:
            return SetChild(index=upd.index, name=name, message="held by a RoleBasedGroup not of the set")
        return child_view(made, upd.index, template_hash(group_template(obj)))

    @activity.defn(name="wait_set_child")
    async def wait_set_child(self, req: SetChildWait) -> SetChild:
        """Until the child is Ready at `generation` or later, or `within_seconds` have passed: the answer
        is how it stands then (the workflow looks at the set again and waits on)."""
        name = child_name(req.key.name, req.index)
        deadline = time.monotonic() + req.within_seconds
        while True:
            child = await self._child(req.key.namespace, name)
            if child is None:
                return SetChild(index=req.index, name=name, message="deleted")
            view = child_view(child, req.index, child_template_hash(child))
            if (view.ready and view.generation >= req.generation) or time.monotonic() >= deadline:
                return view
            beat(view.message)
            await asyncio.sleep(POLL_SECONDS)

    async def _child(self, ns: str, name: str) -> JSON | None:
        if await groups_readable(self.cache):
            return self.cache.get(GROUPS, ns, name)
        return await kube_call(lambda: self.kube.get_or_none(GROUPS.path(ns, name)))

    @activity.defn(name="report_set")
    async def report_set(self, upd: SetStatusUpdate) -> None:
        """Status written when it changed (merge patch of the fields we own), then the Event."""
        obj = await self._set(upd)
        if obj is None:
            return
        current: JSON = obj.get("status") or {}
        status: JSON = {
            "observedGeneration": upd.generation,
            "replicas": upd.replicas,
            "readyReplicas": upd.ready_replicas,
            "selector": set_selector(upd.key.name),
            "conditions": merge_conditions(current.get("conditions") or [], upd.conditions, upd.generation),
        }
        if any(current.get(k) != v for k, v in status.items()):
            path = SETS.path(upd.key.namespace, upd.key.name) + "/status"
            await kube_call(lambda: self.kube.patch(path, {"status": status}, content_type=MERGE))
        if upd.event is not None:
            await record_event(self.kube, upd.event)
