"""What every activity shares: the Kubernetes call wrapper (retry what is worth retrying, refuse the
rest with the API server's message), heartbeats that work in local activities too, the spec model, and
the group a step's `SpecRef` names, read from the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from rbg_flows.api import RoleBasedGroup, RoleBasedGroupStatus, parse_rbg
from rbg_flows.api.conversion import internal_form
from rbg_flows.kube.cache import WatchFailing, WorkloadCache
from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.kube.errors import describe, is_retryable, with_retries
from rbg_flows.kube.kinds import GROUPS
from rbg_flows.messages import ConditionUpdate, SpecEvent, SpecRef, spec_event

T = TypeVar("T")
JSON = dict[str, Any]
# How long a step waits for the watch cache to catch up with its group before reading the API server.
GROUP_CACHE_WAIT_SECONDS = 2.0


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def delete_exactly(kube: KubeClient, path: str, uid: str, propagation: str | None = None) -> bool:
    """Delete the object at `path` only if it is still the one with `uid`: True when this call deleted it,
    False when it was gone already or a new object holds the name (not ours to remove)."""
    body: JSON = {"preconditions": {"uid": uid}}
    if propagation:
        body["propagationPolicy"] = propagation

    async def delete() -> bool:
        try:
            await kube.delete(path, body=body)
            return True
        except ApiError as e:
            if e.status in (404, 409):
                return False
            raise

    return await kube_call(delete)


def merge_conditions(current: list[JSON], updates: list[ConditionUpdate], generation: int) -> list[JSON]:
    """The conditions with `updates` written over them; a condition whose status stays keeps its
    lastTransitionTime (the API conventions' meaning of it)."""
    now = now_rfc3339()
    conditions = {c["type"]: c for c in current}
    for c in updates:
        old = conditions.get(c.type)
        transition = old["lastTransitionTime"] if old and old.get("status") == c.status else now
        conditions[c.type] = {
            "type": c.type,
            "status": c.status,
            "reason": c.reason,
            "message": c.message,
            "lastTransitionTime": transition,
            "observedGeneration": generation,
        }
    return list(conditions.values())


def beat(*details: Any) -> None:
    """Heartbeat, when running as a normal activity (a local activity has nothing to heartbeat to)."""
    if activity.in_activity() and not activity.info().is_local:
        activity.heartbeat(*details)


# While a call is in flight: well inside the shortest heartbeat timeout the worker accepts.
CALL_HEARTBEAT_SECONDS = 2.0


async def kube_call(call: Callable[[], Awaitable[T]]) -> T:
    """Retry what is worth retrying here; turn the rest into a non-retryable error with a clear message."""

    async def attempt() -> T:
        # A sign of life at each attempt and while it is in flight: a worker killed mid-call is noticed
        # within the heartbeat timeout, and a call that waits its turn (the client's rate limit, a slow
        # API server) is not mistaken for a dead worker. Without the latter, a burst of 1,000 groups
        # timed its applies out on heartbeats and retried them, adding to the queue they waited in.
        beat()
        running = asyncio.ensure_future(call())
        try:
            while True:
                done, _ = await asyncio.wait({running}, timeout=CALL_HEARTBEAT_SECONDS)
                if done:
                    return running.result()
                beat()
        finally:
            running.cancel()

    try:
        return await with_retries(attempt)
    except ApiError as e:
        raise kube_error(e) from e


def kube_error(e: ApiError) -> ApplicationError:
    """The API server's refusal as the activity's error: its message, `Kube<status>` as the type."""
    return ApplicationError(describe(e), type=f"Kube{e.status}", non_retryable=not is_retryable(e))


def model_of(event: SpecEvent) -> RoleBasedGroup:
    rbg, errors = parse_rbg(event.obj)
    if rbg is None or errors:
        raise ApplicationError("spec no longer validates: " + "; ".join(map(str, errors)), non_retryable=True)
    return rbg


def check_ref(ref: SpecRef, live: SpecEvent | None) -> SpecEvent:
    """`live` if it is the version `ref` names, else why not (pure). A newer generation is retryable: the
    watcher's signal for it makes the entity cancel this operation and start the newer one, and until it
    arrives the step must not build the newer spec under the older operation's name."""
    if live is None:
        raise ApplicationError("the RoleBasedGroup was deleted", type="Deleted", non_retryable=True)
    if live.uid != ref.uid:
        raise ApplicationError("the RoleBasedGroup was replaced", type="Replaced", non_retryable=True)
    if live.generation > ref.generation:
        raise ApplicationError(
            f"the group is at generation {live.generation}, this operation is for {ref.generation}: "
            "waiting for the newer operation to take over",
            type="Superseded",
        )
    if live.generation < ref.generation:
        # The API server never goes back; a read from a lagging one would catch up.
        raise ApplicationError(
            f"the group is at generation {live.generation}, older than this operation's {ref.generation}",
            type="StaleRead",
        )
    return live


async def resolve(kube: KubeClient, ref: SpecRef, cache: WorkloadCache | None = None) -> RoleBasedGroup:
    """The group a step acts on, read afresh (nothing is kept between activities) and normalised as the
    watcher reports it, so what is built from it is what the operation's own event would build.

    Read from the worker's watch cache of groups when it holds the generation the step is for, else from
    the API server: a GET per step was a third of a deploy's API requests. The cache may lag the API
    server by a watch event's latency, so a step waits a moment for it before asking the server."""
    body = await _cached_group(cache, ref) if cache is not None else None
    if body is None:
        body = await kube_call(lambda: kube.get_or_none(GROUPS.path(ref.key.namespace, ref.key.name)))
    internal = internal_form(body) if body is not None else None
    rbg = model_of(check_ref(ref, spec_event(internal) if internal is not None else None))
    return _with_status(rbg, (internal or {}).get("status"))


def _with_status(rbg: RoleBasedGroup, status: Any) -> RoleBasedGroup:
    """`rbg` with the live status, for what builders keep from earlier operations (the placement)."""
    if not isinstance(status, dict):
        return rbg
    try:
        return rbg.model_copy(update={"status": RoleBasedGroupStatus.model_validate(status)})
    except ValidationError:
        return rbg  # a status someone wrote by hand that does not parse: nothing is kept from it


async def groups_readable(cache: WorkloadCache) -> bool:
    """Whether the watch cache of groups can answer now: its first list done and its watch working (a
    worker whose role may not list groups, or a failing watch, reads the API server instead)."""
    try:
        if not await cache.ensure(GROUPS, give_up_after=GROUP_CACHE_WAIT_SECONDS):
            return False
    except WatchFailing:
        return False
    return cache.failure(GROUPS) is None


async def _cached_group(cache: WorkloadCache, ref: SpecRef) -> JSON | None:
    """The cached group once it is the one `ref` names at its generation or a newer one; None when the
    cache cannot say within GROUP_CACHE_WAIT_SECONDS (not there yet, deleted, or its watch failing:
    e.g. a worker whose role may not list groups falls back to a GET per step)."""
    if not await groups_readable(cache):
        return None
    ns, name = ref.key.namespace, ref.key.name
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GROUP_CACHE_WAIT_SECONDS
    with cache.subscribe(GROUPS, ns, name) as changed:
        while True:
            obj = cache.get(GROUPS, ns, name)
            meta = (obj or {}).get("metadata") or {}
            if meta.get("uid") == ref.uid and int(meta.get("generation") or 0) >= ref.generation:
                return obj
            left = deadline - loop.time()
            if left <= 0 or cache.failure(GROUPS) is not None:
                return None
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
