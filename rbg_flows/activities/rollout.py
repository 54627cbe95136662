"""Activities of the upgrade operation: hold and step a StatefulSet role through its partition, wait
for the pods a step moved, and rewrite a group's spec to an older revision (rollback, abort).

They share the worker's Kubernetes client and watch cache with `GroupActivities`. Each is idempotent:
applying a partition is server-side apply, a wait only reads, and a rewrite carries the revision's
spec (writing it twice changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from functools import partial
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import beat, kube_call, resolve
from rbg_flows.activities.gang import GangApis
from rbg_flows.activities.profiles import ProfileReader
from rbg_flows.activities.service_names import apply_headless_service, needs_move, retire_legacy_service
from rbg_flows.activities.wait import check_watch, sleep_bound, watch_details, watched
from rbg_flows.api import (
    STATEFULSET,
    RoleBasedGroup,
    RoleSpec,
    resolve_int_or_percent,
    service_name,
    workload_name,
)
from rbg_flows.api.keys import STS_REVISION_LABEL, rbg_path
from rbg_flows.kube.cache import DEFAULT_GIVE_UP_SECONDS, WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, JSON_PATCH, ApiError, KubeClient
from rbg_flows.kube.kinds import KINDS, PODS, SERVICE
from rbg_flows.kube.unblock import Unblocker, ordinal_of
from rbg_flows.kube.wait import is_ready
from rbg_flows.manifests.engine_runtime import rolling_fingerprints
from rbg_flows.manifests.hashing import role_revision_hash
from rbg_flows.manifests.labels import owned_by, role_revision_label
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.messages import (
    PartitionRequest,
    PruneRequest,
    RoleRollState,
    SpecEvent,
    SpecRewrite,
    StepRequest,
    StepWait,
    spec_event,
)

JSON = dict[str, Any]
STS = KINDS[STATEFULSET]


def rolled_role(rbg: RoleBasedGroup, name: str, replicas: int) -> RoleSpec:
    """The role as the upgrade rolls it: the new spec at the replicas the rollout runs at."""
    return rbg.spec.role(name).model_copy(update={"replicas": replicas})


def surge_of(role: RoleSpec) -> int:
    """Extra pods while a StatefulSet role rolls: maxSurge as a count, capped at the replicas."""
    surge = resolve_int_or_percent(
        role.rollout_strategy.rolling_update.max_surge, role.replicas, round_up=True
    )
    return min(surge, role.replicas)


def floor_of(role: RoleSpec) -> int:
    return resolve_int_or_percent(
        role.rollout_strategy.rolling_update.partition, role.replicas, round_up=True
    )


def hold_partition(
    current: JSON | None, desired_hash: str, role_label: str, replicas: int, floor: int
) -> int:
    """Where to put the partition before the first step toward a template (pure).

    Same template already (a resumed upgrade): where it is. A different one while an upgrade had the
    partition above the floor (a newer spec mid-upgrade): where it is, so the pods above it go straight to
    the newest template and no pod is replaced twice. At rest (partition at the floor, whatever the
    revisions of the pods below it): all pods held (partition = replicas).
    """
    if current is None:
        return floor  # recreated from nothing: nothing to keep in step with
    partition = int(
        ((current.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate", {}).get("partition")
        or 0
    )
    labels = current["metadata"].get("labels") or {}
    if labels.get(role_label) == desired_hash or partition > floor:
        return max(floor, min(partition, replicas))
    return replicas


def pods_on_target(sts: JSON, pods: list[JSON], replicas: int) -> tuple[list[bool], int]:
    """Per ordinal < replicas, whether its pod runs the StatefulSet's update revision; and how many of
    those are Ready (pure)."""
    revision = (sts.get("status") or {}).get("updateRevision")
    on = [False] * replicas
    ready = 0
    for pod in pods:
        i = ordinal_of(pod)
        if i is None or not 0 <= i < replicas or pod["metadata"].get("deletionTimestamp"):
            continue
        if revision and (pod["metadata"].get("labels") or {}).get(STS_REVISION_LABEL) == revision:
            on[i] = True
            ready += int(is_ready(pod))
    return on, ready


def observed(sts: JSON | None, generation: int) -> bool:
    return sts is not None and int((sts.get("status") or {}).get("observedGeneration") or 0) >= generation


class RolloutActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache):
        self.kube = kube
        self.cache = cache
        self.profiles = ProfileReader(kube, cache)
        self.gang = GangApis(kube)

    @activity.defn(name="set_partition")
    async def set_partition(self, req: PartitionRequest) -> RoleRollState:
        """Apply the role's StatefulSet with the target template at a partition (or held where it is)
        and return the role as its controller sees it afterwards."""
        rbg = await resolve(self.kube, req.ref, self.cache)
        role = rolled_role(rbg, req.role, req.replicas)
        ns = req.key.namespace
        name = f"{rbg.metadata.name}-{role.name}"
        floor = min(max(floor_of(role), req.floor or 0), role.replicas)
        await watched(self.cache, STS, DEFAULT_GIVE_UP_SECONDS, 3.0)
        await watched(self.cache, PODS, DEFAULT_GIVE_UP_SECONDS, 3.0)
        current = self.cache.get(STS, ns, name) or await kube_call(
            lambda: self.kube.get_or_none(STS.path(ns, name))
        )
        profiles = await self.profiles.for_role(rbg, role, current, req.ref.profiles)
        if req.partition is None:
            partition = hold_partition(
                current,
                role_revision_hash(rbg.spec, role, rolling_fingerprints(role, profiles)),
                role_revision_label(role.name),
                role.replicas,
                floor,
            )
        else:
            partition = max(floor, min(req.partition, role.replicas))
        if needs_move(current, rbg, role):
            # A group made under v0.4's Service name: the StatefulSet moves (pods kept) before it rolls.
            await apply_headless_service(self.kube, self.cache, rbg, role)
        gang = await self.gang.served() if rbg.spec.pod_group_policy else None
        body = build_workload(rbg, role, partition=partition, profiles=profiles, gang=gang)
        # Surge pods exist only while pods are moving (not while all are held, nor once the partition is
        # back at the floor); ordinals >= N come up on the new template.
        total = role.replicas + (surge_of(role) if floor < partition < role.replicas else 0)
        body["spec"]["replicas"] = total
        applied = await kube_call(lambda: self.kube.apply(STS.path(ns, name), body, FIELD_MANAGER))
        generation = int(applied["metadata"].get("generation") or 0)
        state = RoleRollState(
            role=role.name,
            workload=name,
            replicas=role.replicas,
            partition=partition,
            floor=floor,
            generation=generation,
            total=total,
        )
        # The update revision is the new template's only once the controller has seen it.
        return await self._observe(
            ns,
            state,
            want=-1,
            known_ready=-1,
            deadline=None,
            heartbeat=3.0,
            report_after=0.0,
            watch_bound=DEFAULT_GIVE_UP_SECONDS,
        )

    @activity.defn(name="step_role")
    async def step_role(self, req: StepRequest) -> RoleRollState:
        """Move the partition and wait for the step's pods in one activity: one round trip per role and
        step instead of two (returns early, not done, when readiness changes, as `wait_step` does)."""
        moved = await self.set_partition(req)
        return await self.wait_step(
            StepWait(
                key=req.key,
                uid=req.ref.uid,
                state=moved,
                want=req.want,
                known_ready=moved.ready_on_target,
                min_report_seconds=req.min_report_seconds,
                heartbeat_every_seconds=req.heartbeat_every_seconds,
                deadline_seconds=req.deadline_seconds,
                watch_failure_seconds=req.watch_failure_seconds,
            )
        )

    @activity.defn(name="wait_step")
    async def wait_step(self, req: StepWait) -> RoleRollState:
        """Wait until `want` pods of the role (ordinals < N) run the target revision and are Ready, or
        readiness changes (at most every min_report_seconds), or the deadline passes."""
        await watched(self.cache, STS, req.watch_failure_seconds, req.heartbeat_every_seconds)
        await watched(self.cache, PODS, req.watch_failure_seconds, req.heartbeat_every_seconds)
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + req.deadline_seconds if req.deadline_seconds is not None else None
        report_after = start + (req.min_report_seconds if req.known_ready >= 0 else 0.0)
        state = await self._observe(
            req.key.namespace,
            req.state,
            want=req.want,
            known_ready=req.known_ready,
            deadline=deadline,
            heartbeat=req.heartbeat_every_seconds,
            report_after=report_after,
            watch_bound=req.watch_failure_seconds,
        )
        if state.done:
            # The step's pods were recreated under the current Service name: the v0.4 one may be unused now.
            await retire_legacy_service(
                self.kube, self.cache, req.key.namespace, req.key.name, req.uid, state.role
            )
        return state

    async def _observe(
        self,
        ns: str,
        state: RoleRollState,
        *,
        want: int,
        known_ready: int,
        deadline: float | None,
        heartbeat: float,
        report_after: float,
        watch_bound: float,
    ) -> RoleRollState:
        loop = asyncio.get_running_loop()
        unblock = Unblocker(self.kube)
        with self.cache.subscribe(STS, ns, state.workload, PODS) as changed:
            while True:
                failure = check_watch(self.cache, watch_bound, STS, PODS)
                sts = self.cache.get(STS, ns, state.workload)
                seen = observed(sts, state.generation)
                current = state
                if sts is not None and seen:
                    on, ready = pods_on_target(sts, self.cache.pods(ns, state.workload), state.replicas)
                    current = state.model_copy(update={"on_target": on, "ready_on_target": ready})
                settled = seen and int((sts or {}).get("status", {}).get("replicas") or 0) == state.total
                done = seen and (want < 0 or (current.ready_on_target >= want and settled))
                beat(
                    {
                        "role": state.role,
                        "updated": current.updated,
                        "ready": current.ready_on_target,
                        "want": want,
                        **watch_details(failure),
                    }
                )
                now = loop.time()
                if done:
                    return current.model_copy(update={"done": True, "timed_out": False})
                if sts is not None and want >= 0:
                    await unblock(sts, self.cache.pods(ns, state.workload))
                if seen and want >= 0 and current.ready_on_target != known_ready and now >= report_after:
                    return current.model_copy(update={"done": False, "timed_out": False})
                if deadline is not None and now >= deadline:
                    return current.model_copy(update={"done": False, "timed_out": True})
                changed.clear()
                wait = heartbeat
                if seen and current.ready_on_target != known_ready:
                    wait = max(0.01, min(wait, report_after - now))
                if deadline is not None:
                    wait = max(0.01, min(wait, deadline - now))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), sleep_bound(failure, watch_bound, wait))

    @activity.defn(name="prune_roles")
    async def prune_roles(self, req: PruneRequest) -> list[str]:
        """Delete the workloads (and headless Services) of roles the spec dropped; their pods go with them
        through ownerReferences. Only objects this group owns, by uid precondition; idempotent."""
        ns, deleted = req.key.namespace, []
        for role in req.roles:
            workload = workload_name(req.key.name, role)
            # The headless Service under today's name and, for a group made before v0.5, the old one.
            targets = [
                *((kind, workload) for kind in KINDS.values()),
                (SERVICE, service_name(req.key.name, role)),
                (SERVICE, workload),
            ]
            for kind, name in targets:
                path = kind.path(ns, name)
                obj = await kube_call(partial(self.kube.get_or_none, path))
                if obj is None or not owned_by(obj, req.uid):
                    continue
                body = {"preconditions": {"uid": obj["metadata"]["uid"]}, "propagationPolicy": "Background"}
                await kube_call(partial(self.kube.delete, path, body))
                deleted.append(f"{kind.label} {name}")
        return deleted

    @activity.defn(name="rewrite_spec")
    async def rewrite_spec(self, req: SpecRewrite) -> SpecEvent:
        """Set the group's spec to a revision's (each role keeps its current replicas, as `kubectl
        rollout undo` does); returns the object as the watcher would report it."""
        ns = req.key.namespace
        revision = await kube_call(
            lambda: self.kube.get_or_none(f"/apis/apps/v1/namespaces/{ns}/controllerrevisions/{req.revision}")
        )
        if revision is None:
            raise ApplicationError(f"ControllerRevision {req.revision} no longer exists", non_retryable=True)

        async def rewrite() -> JSON:
            obj = await self.kube.get(rbg_path(req.key.namespace, req.key.name))
            if obj["metadata"]["uid"] != req.uid:
                raise ApplicationError("the RoleBasedGroup was replaced meanwhile", non_retryable=True)
            # The whole spec replaced (fields the revision lacks go away), on condition that nobody changed
            # it since the read: a test of the generation, not of the resourceVersion, which status writes
            # and the watcher's annotations move all the time.
            patch = [
                {"op": "test", "path": "/metadata/generation", "value": obj["metadata"]["generation"]},
                {
                    "op": "replace",
                    "path": "/spec",
                    "value": rewritten_spec(obj.get("spec") or {}, revision["data"]["spec"]),
                },
            ]
            try:
                return await self.kube.patch(
                    rbg_path(req.key.namespace, req.key.name), patch, content_type=JSON_PATCH
                )
            except ApiError as e:
                # A failed test is a bare 422; so is a spec the API server refuses. Tell them apart by
                # whether the generation moved: if it did, it is a conflict, retried from a fresh read.
                if e.status == 422:
                    now = await self.kube.get(rbg_path(req.key.namespace, req.key.name))
                    if now["metadata"]["generation"] != obj["metadata"]["generation"]:
                        raise ApiError(409, "Conflict", "the spec changed while rolling back") from e
                raise

        return spec_event(await kube_call(rewrite))


def rewritten_spec(current: JSON, revision: JSON) -> JSON:
    """The revision's spec with each role's current replicas (a role the current spec lacks gets the
    default, 1) (pure)."""
    replicas = {r.get("name"): r.get("replicas") for r in current.get("roles") or []}
    spec = copy.deepcopy(revision)
    for role in spec.get("roles") or []:
        if replicas.get(role.get("name")) is not None:
            role["replicas"] = replicas[role["name"]]
    return spec
