"""Waiting for a role to be ready: on the worker's shared watch cache, heartbeating its progress."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import beat
from rbg_flows.api import LEADERWORKERSET, STATEFULSET
from rbg_flows.kube.cache import WatchFailing, WatchFailure, WorkloadCache
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.kinds import KINDS, PODS, WorkloadKind
from rbg_flows.kube.unblock import Unblocker
from rbg_flows.kube.wait import is_ready
from rbg_flows.messages import RoleProgress, WaitRequest
from rbg_flows.rollout.readiness import Readiness, readiness, runs_template, unschedulable

WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
log = structlog.get_logger(__name__)


def watch_failed(failure: WatchFailure) -> ApplicationError:
    """Retryable: the API server may come back; meanwhile each failed attempt says why in the history."""
    return ApplicationError(str(failure), watch_details(failure), type="WatchFailing")


def watch_details(failure: WatchFailure | None) -> dict[str, Any]:
    """What a heartbeat adds about a failing watch (nothing while it works)."""
    if failure is None:
        return {}
    return {"watch_error": f"{failure.kind}: {failure.error}", "since_s": round(failure.seconds, 1)}


def check_watch(cache: WorkloadCache, bound: float, *kinds: WorkloadKind) -> WatchFailure | None:
    """The failure of these kinds' watch, if any, logged; past `bound` seconds it fails the attempt, since
    counts from a cache nobody refreshes are not the cluster's."""
    failure = cache.failure(*kinds)
    if failure is not None:
        log.warning(
            "waiting on a failing watch",
            kind=failure.kind,
            error=failure.error,
            since_s=round(failure.seconds, 1),
            bound_s=bound,
        )
        if failure.seconds >= bound:
            raise watch_failed(failure)
    return failure


def sleep_bound(failure: WatchFailure | None, bound: float, wait: float) -> float:
    """`wait`, shortened so a wait on a failing watch wakes when it is due to give up."""
    return wait if failure is None else max(0.01, min(wait, bound - failure.seconds))


async def watched(cache: WorkloadCache, kind: WorkloadKind, bound: float, heartbeat_every: float) -> bool:
    """`cache.ensure(kind)`, heartbeating while the first list is awaited (it may take up to `bound` s of
    failures, longer than a heartbeat timeout); an informer that cannot list fails the attempt."""
    ensure = asyncio.ensure_future(cache.ensure(kind, give_up_after=bound))
    try:
        while True:
            done, _ = await asyncio.wait({ensure}, timeout=heartbeat_every)
            if done:
                try:
                    return ensure.result()
                except WatchFailing as e:
                    raise watch_failed(e.failure) from e
            failure = check_watch(cache, bound, kind)
            beat({"waiting_for": f"{kind.label} watch", **watch_details(failure)})
    finally:
        ensure.cancel()


class WaitActivities:
    def __init__(
        self, kube: KubeClient, cache: WorkloadCache, *, clock: Callable[[], float] = time.monotonic
    ):
        self.kube = kube
        self.cache = cache
        self.clock = clock

    async def wait(self, req: WaitRequest) -> RoleProgress:
        """Watch the role's workload until its readiness differs from what the caller knows, it is done,
        or the deadline passes. Heartbeats carry the progress, so a stalled wait is visible."""
        kind = KINDS[req.plan.kind]
        ns, name = req.key.namespace, req.plan.workload
        bound = req.watch_failure_seconds
        if not await watched(self.cache, kind, bound, req.heartbeat_every_seconds):
            raise ApplicationError(f"{kind.label} is not served by this cluster", non_retryable=True)
        started = self.clock()
        deadline = started + req.deadline_seconds if req.deadline_seconds is not None else None
        # A counter that flaps (LWS recomputes its status in several places) must not turn into one activity
        # per flap in the history: intermediate progress is reported at most every min_report_seconds.
        report_after = started + (req.min_report_seconds if req.known_ready >= 0 else 0.0)
        unblock = Unblocker(self.kube) if kind.key == STATEFULSET else None
        # Pods too where readiness reads them (LWS, the scheduled gate) or stuck ones are removed
        # (StatefulSet).
        # Pods always: readiness reads them (LWS, the scheduled gate), stuck ones are removed
        # (StatefulSet), and the scheduler's word on those it cannot place is reported.
        await watched(self.cache, PODS, bound, req.heartbeat_every_seconds)
        pod_kinds = (PODS,)
        with self.cache.subscribe(kind, ns, name, *pod_kinds) as changed:
            while True:
                failure = check_watch(self.cache, bound, kind, *pod_kinds)
                workload = self.cache.get(kind, ns, name)
                r = readiness(kind.key, workload, req.plan.replicas, req.min_generation)
                if r.done and req.plan.kind == LEADERWORKERSET and req.gate == "ready":
                    r = self._lws_pods_ready(req, r)
                done = r.done if req.gate == "ready" else self._pods_bound(req, r)
                if done and req.replaced:
                    # A failover's role is ready once none of the pods it deleted is left (the status
                    # may still count them as ready before the controller has seen them go).
                    left = {p["metadata"]["uid"] for p in self.cache.pods(ns, name)}
                    done = not left.intersection(req.replaced)
                progress = RoleProgress(
                    role=req.plan.role,
                    replicas=r.replicas,
                    ready=r.ready,
                    updated=r.updated,
                    done=done,
                    unschedulable="" if done else unschedulable(req.plan.role, self.cache.pods(ns, name)),
                )
                beat({**progress.model_dump(), **watch_details(failure)})
                news = (
                    progress.ready != req.known_ready
                    or bool(progress.unschedulable) != req.known_unschedulable
                )
                if progress.done or (news and self.clock() >= report_after):
                    return progress
                if deadline is not None and self.clock() >= deadline:
                    return progress.model_copy(update={"timed_out": True})
                if unblock is not None and workload is not None:
                    await unblock(workload, self.cache.pods(ns, name))
                changed.clear()
                wait = req.heartbeat_every_seconds
                if news:
                    wait = max(0.01, min(wait, report_after - self.clock()))
                if deadline is not None:
                    wait = max(0.01, min(wait, deadline - self.clock()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), sleep_bound(failure, bound, wait))

    def _pods_bound(self, req: WaitRequest, r: Readiness) -> bool:
        # OrderScheduled: the step is done once the controller has acted on the new replicas and the
        # role has exactly its pods, none leaving (a scale-in's are gone) and every one bound to a node.
        pods = self.cache.pods(req.key.namespace, req.plan.workload)
        want = r.replicas * req.plan.pods_per_instance
        bound = all((p.get("spec") or {}).get("nodeName") for p in pods)
        leaving = any(p["metadata"].get("deletionTimestamp") for p in pods)
        return r.settled and len(pods) == want and bound and not leaving

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
