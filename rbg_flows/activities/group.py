"""The activities of every RoleBasedGroup operation. Each is idempotent (server-side apply under one
field manager, deterministic event names, level-triggered reads), so a retry or a replay is safe."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.cache import PODS, WorkloadCache
from rbg_flows.activities.unblock import Unblocker
from rbg_flows.activities.workloads import (
    CONFIGMAP,
    KINDS,
    LWS_API,
    SERVICE,
    Readiness,
    readiness,
    runs_template,
)
from rbg_flows.api import (
    LEADERWORKERSET,
    STATEFULSET,
    RoleBasedGroup,
    dependency_levels,
    parse_rbg,
    workload_name,
)
from rbg_flows.api.validation import FieldError
from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.kube.errors import describe, is_retryable, with_retries
from rbg_flows.kube.wait import is_ready
from rbg_flows.manifests.discovery import discovery_configmap
from rbg_flows.manifests.labels import CONTROLLER_REVISION_HASH_LABEL, GROUP_NAME_LABEL, owned_by
from rbg_flows.manifests.revisions import build_controller_revision, next_revision, to_prune
from rbg_flows.manifests.service import build_headless_service
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.workflows.types import (
    FIELD_MANAGER,
    AppliedWorkload,
    EventRecord,
    RbgKey,
    RevisionInfo,
    RevisionRecord,
    RolePlan,
    RoleProgress,
    RoleRequest,
    SpecEvent,
    StatusUpdate,
    ValidationReport,
    WaitRequest,
)

T = TypeVar("T")
JSON = dict[str, Any]
RBG_API = "/apis/workloads.x-k8s.io/v1alpha1"
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"


def rbg_path(key: RbgKey) -> str:
    return f"{RBG_API}/namespaces/{key.namespace}/rolebasedgroups/{key.name}"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def beat(*details: Any) -> None:
    """Heartbeat, when running as a normal activity (a local activity has nothing to heartbeat to)."""
    if activity.in_activity() and not activity.info().is_local:
        activity.heartbeat(*details)


async def kube_call(call: Callable[[], Awaitable[T]]) -> T:
    """Retry what is worth retrying here; turn the rest into a non-retryable error with a clear message."""

    async def attempt() -> T:
        # Each attempt is a sign of life: a worker killed mid-call is noticed within the heartbeat
        # timeout instead of the whole start-to-close timeout.
        beat()
        return await call()

    try:
        return await with_retries(attempt)
    except ApiError as e:
        raise ApplicationError(describe(e), type=f"Kube{e.status}", non_retryable=not is_retryable(e)) from e


def model_of(event: SpecEvent) -> RoleBasedGroup:
    rbg, errors = parse_rbg(event.obj)
    if rbg is None or errors:
        raise ApplicationError("spec no longer validates: " + "; ".join(map(str, errors)), non_retryable=True)
    return rbg


class GroupActivities:
    """Activities bound to one Kubernetes client (injected, so tests and the worker choose it)."""

    def __init__(self, kube: KubeClient, *, clock: Callable[[], float] = time.monotonic):
        self.kube = kube
        self.clock = clock
        self.cache = WorkloadCache(kube)

    @activity.defn(name="prepare")
    async def prepare(self, event: SpecEvent) -> ValidationReport:
        """Validate the spec; when it is deployable, apply what every role needs first (the discovery
        ConfigMap), so a refused spec creates nothing."""
        report = await self.validate(event)
        if not report.problems:
            rbg = model_of(event)
            cm = discovery_configmap(rbg)
            path = CONFIGMAP.path(rbg.metadata.namespace or "", cm["metadata"]["name"])
            await kube_call(lambda: self.kube.apply(path, cm, FIELD_MANAGER))
        return report

    async def validate(self, event: SpecEvent) -> ValidationReport:
        rbg, problems = parse_rbg(event.obj)
        if rbg is None:
            return ValidationReport(problems=problems)
        lws_roles = [i for i, r in enumerate(rbg.spec.roles) if r.is_leader_worker_set]
        if lws_roles and await kube_call(lambda: self.kube.get_or_none(LWS_API)) is None:
            problems = [
                *problems,
                *(
                    FieldError(
                        path=f"spec.roles[{i}].workload",
                        message="LeaderWorkerSet is not served by this cluster: install the LeaderWorkerSet "
                        "CRD (leaderworkersets.leaderworkerset.x-k8s.io) and its controller",
                    )
                    for i in lws_roles
                ),
            ]
        if problems:
            return ValidationReport(problems=problems)
        name = rbg.metadata.name or ""
        plans = {
            r.name: RolePlan(
                role=r.name,
                kind=r.workload.key,
                workload=workload_name(name, r.name),
                replicas=r.replicas,
                pods_per_instance=r.pods_per_instance,
            )
            for r in rbg.spec.roles
        }
        return ValidationReport(levels=dependency_levels(rbg.spec.roles), roles=plans)

    @activity.defn(name="record_revision")
    async def record_revision(self, event: SpecEvent) -> RevisionInfo:
        """The ControllerRevision of this spec (created when new), pruned to the newest ten."""
        rbg = model_of(event)
        ns, name = rbg.metadata.namespace or "", rbg.metadata.name or ""
        collection = f"/apis/apps/v1/namespaces/{ns}/controllerrevisions"
        existing = (
            await kube_call(lambda: self.kube.get(collection, labelSelector=f"{GROUP_NAME_LABEL}={name}"))
        )["items"]
        mine = [r for r in existing if owned_by(r, event.uid)]
        wanted = build_controller_revision(rbg, next_revision(mine))
        found: JSON | None = next(
            (r for r in mine if r["metadata"]["name"] == wanted["metadata"]["name"]), None
        )
        previous = max(mine, key=lambda r: int(r.get("revision", 0)), default=None)
        created = found is None
        if found is not None and previous is not None and found is not previous:
            # Back to an older spec (a rollback): like Deployments and StatefulSets, that revision
            # becomes the newest, so history lists it last and pruning keeps it. Recreated rather than
            # patched: the API server re-encodes `data` on a patch and then refuses it as a change to
            # an immutable field. A retry after the delete finds nothing and creates it: no loss.
            stale_path = f"{collection}/{found['metadata']['name']}"
            await kube_call(partial(self.kube.delete, stale_path))
            mine = [r for r in mine if r["metadata"]["name"] != found["metadata"]["name"]]
            found = None
        if found is None:

            async def create() -> JSON:
                try:
                    return await self.kube.create(collection, wanted)
                except ApiError as e:
                    if e.status != 409:
                        raise
                    return await self.kube.get(f"{collection}/{wanted['metadata']['name']}")

            found = await kube_call(create)
            mine.append(found)
        pruned = set(to_prune(mine, found["metadata"]["name"]))
        for stale in sorted(pruned):
            await kube_call(partial(self.kube.delete, f"{collection}/{stale}"))
        kept = sorted(
            (r for r in mine if r["metadata"]["name"] not in pruned), key=lambda r: int(r.get("revision", 0))
        )
        return RevisionInfo(
            name=found["metadata"]["name"],
            revision=int(found.get("revision", 0)),
            hash=found["metadata"]["labels"].get(CONTROLLER_REVISION_HASH_LABEL, ""),
            created=created,
            previous=previous["metadata"]["name"] if previous else None,
            history=[
                RevisionRecord(name=r["metadata"]["name"], revision=int(r.get("revision", 0))) for r in kept
            ],
        )

    @activity.defn(name="apply_role")
    async def apply_role(self, req: RoleRequest) -> AppliedWorkload:
        rbg = model_of(req.event)
        role = rbg.spec.role(req.role)
        kind = KINDS[role.workload.key]
        ns = req.key.namespace
        if kind.key == STATEFULSET:
            svc = build_headless_service(rbg, role)
            await kube_call(
                lambda: self.kube.apply(SERVICE.path(ns, svc["metadata"]["name"]), svc, FIELD_MANAGER)
            )
        body = build_workload(rbg, role)
        name = body["metadata"]["name"]
        applied = await kube_call(lambda: self.kube.apply(kind.path(ns, name), body, FIELD_MANAGER))
        return AppliedWorkload(workload=name, generation=int(applied["metadata"].get("generation") or 0))

    @activity.defn(name="wait_role")
    async def wait_role(self, req: WaitRequest) -> RoleProgress:
        """Watch the role's workload until its readiness differs from what the caller knows, it is done,
        or the deadline passes. Heartbeats carry the progress, so a stalled wait is visible."""
        kind = KINDS[req.plan.kind]
        ns, name = req.key.namespace, req.plan.workload
        if not await self.cache.ensure(kind):
            raise ApplicationError(f"{kind.label} is not served by this cluster", non_retryable=True)
        started = self.clock()
        deadline = started + req.deadline_seconds if req.deadline_seconds is not None else None
        # A counter that flaps (LWS recomputes its status in several places) must not turn into one activity
        # per flap in the history: intermediate progress is reported at most every min_report_seconds.
        report_after = started + (req.min_report_seconds if req.known_ready >= 0 else 0.0)
        unblock = Unblocker(self.kube) if kind.key == STATEFULSET else None
        if kind.key in (STATEFULSET, LEADERWORKERSET):
            await self.cache.ensure(PODS)
        # Pods too where readiness reads them (LWS) or stuck ones are removed (StatefulSet).
        pod_kinds = (PODS,) if kind.key in (STATEFULSET, LEADERWORKERSET) else ()
        with self.cache.subscribe(kind, ns, name, *pod_kinds) as changed:
            while True:
                workload = self.cache.get(kind, ns, name)
                r = readiness(kind.key, workload, req.plan.replicas, req.min_generation)
                if r.done and req.plan.kind == LEADERWORKERSET:
                    r = self._lws_pods_ready(req, r)
                progress = RoleProgress(
                    role=req.plan.role, replicas=r.replicas, ready=r.ready, updated=r.updated, done=r.done
                )
                beat(progress.model_dump())
                if progress.done or (progress.ready != req.known_ready and self.clock() >= report_after):
                    return progress
                if deadline is not None and self.clock() >= deadline:
                    return progress.model_copy(update={"timed_out": True})
                if unblock is not None and workload is not None:
                    await unblock(workload, self.cache.pods(ns, name))
                changed.clear()
                wait = req.heartbeat_every_seconds
                if progress.ready != req.known_ready:
                    wait = max(0.01, min(wait, report_after - self.clock()))
                if deadline is not None:
                    wait = max(0.01, min(wait, deadline - self.clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)

    def _lws_pods_ready(self, req: WaitRequest, r: Readiness) -> Readiness:
        # LeaderWorkerSet counts a group ready once its leader is ready and its worker StatefulSet is at
        # the right revision, whatever the workers' readiness: the role is ready only when every pod is.
        pods = self.cache.pods(req.key.namespace, req.plan.workload)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in live if is_ready(p))
        # LWS v0.8 has no observedGeneration: after a template change its counters can look done before
        # it has replaced anything, so every pod must also run the template we applied.
        lws = self.cache.get(KINDS[LEADERWORKERSET], req.key.namespace, req.plan.workload) or {}
        templates = ((lws.get("spec") or {}).get("leaderWorkerTemplate")) or {}
        current = all(
            runs_template(
                p,
                templates.get("leaderTemplate") or templates.get("workerTemplate") or {}
                if (p["metadata"].get("labels") or {}).get(WORKER_INDEX_LABEL) == "0"
                else templates.get("workerTemplate") or {},
            )
            for p in live
        )
        return Readiness(
            r.replicas,
            r.ready,
            r.updated,
            r.settled and current and ready == len(live) == r.replicas * req.plan.pods_per_instance,
        )

    @activity.defn(name="report")
    async def report(self, upd: StatusUpdate) -> None:
        """Write the status, then post its Event (so `kubectl describe` never shows an Event ahead of the
        status it announces)."""
        if upd.phase or upd.conditions or upd.observed_generation is not None or upd.update_revision:
            await kube_call(lambda: self._write_status(upd))
        if upd.event is not None:
            await self.record_event(upd.event)

    async def _write_status(self, upd: StatusUpdate) -> None:
        obj = await self.kube.get_or_none(rbg_path(upd.key))
        if obj is None or obj["metadata"]["uid"] != upd.uid:
            return  # deleted, or replaced by a new object of the same name: not ours to write
        status: JSON = dict(obj.get("status") or {})
        now = now_rfc3339()
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        generation = int(obj["metadata"].get("generation") or 0)
        for c in upd.conditions:
            old = conditions.get(c.type)
            transition = old["lastTransitionTime"] if old and old.get("status") == c.status else now
            conditions[c.type] = {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": transition,
                "observedGeneration": upd.observed_generation or generation,
            }
        status["conditions"] = list(conditions.values())
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
        status["roleStatuses"] = await self._role_statuses(upd.key, obj)
        body = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {"name": upd.key.name, "namespace": upd.key.namespace},
            "status": status,
        }
        await self.kube.apply(rbg_path(upd.key) + "/status", body, FIELD_MANAGER)

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
        info = activity.info()
        # One event per (operation run, activity): a retried activity finds its event already there.
        digest = hashlib.sha1(f"{info.workflow_run_id}/{info.activity_id}".encode()).hexdigest()[:12]
        now = now_rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ev.key.name}.{digest}", "namespace": ev.key.namespace},
            "involvedObject": {
                "apiVersion": "workloads.x-k8s.io/v1alpha1",
                "kind": "RoleBasedGroup",
                "name": ev.key.name,
                "namespace": ev.key.namespace,
                "uid": ev.uid,
            },
            "reason": ev.reason,
            "message": ev.message[:1024],
            "type": ev.type,
            "source": {"component": "rbg-flows"},
            "reportingComponent": "rbg-flows",
            "reportingInstance": info.workflow_id,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

        async def create() -> None:
            try:
                await self.kube.create(f"/api/v1/namespaces/{ev.key.namespace}/events", body)
            except ApiError as e:
                if e.status != 409:
                    raise

        await kube_call(create)


def _workload_key(role: JSON) -> str:
    w = role.get("workload") or {}
    return f"{w.get('apiVersion', 'apps/v1')}/{w.get('kind', 'StatefulSet')}"
