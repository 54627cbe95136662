"""One shared watch per workload kind for every wait in this worker.

A wait per role holding its own watch does not scale: 1,000 groups mean thousands of open watches and as
many pooled connections (starving the applies that share the pool). Instead each worker lists and watches
the workloads rbg_flows manages (by label, all namespaces) once per kind, and waits subscribe to the cache.

The cache must never go stale silently: each (re-)list replaces what it holds of the kind, and while a
kind's informer cannot list or watch, `failure(kind)` says so and since when, so a wait can tell the truth
instead of reporting counts nobody refreshes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from rbg_flows.api.keys import GROUP_NAME_LABEL, ROLE_LABEL
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.informer import WATCH_ERRORS, backoff, list_and_watch
from rbg_flows.kube.kinds import PODS, WorkloadKind

JSON = dict[str, Any]
log = structlog.get_logger(__name__)

# How long `ensure` waits on a kind whose informer keeps failing before it gives up with the error.
DEFAULT_GIVE_UP_SECONDS = 30.0


@dataclass(frozen=True)
class WatchFailure:
    """A kind whose informer has been unable to list or watch for `seconds`, and its latest error."""

    kind: str
    error: str
    seconds: float

    def __str__(self) -> str:
        return f"the watch of {self.kind} has been failing for {self.seconds:.0f} s: {self.error}"


class WatchFailing(Exception):
    def __init__(self, failure: WatchFailure):
        super().__init__(str(failure))
        self.failure = failure


@dataclass
class _Informer:
    kind: WorkloadKind
    # True once listed, False when the cluster does not serve the kind; shared by every concurrent caller.
    settled: asyncio.Future[bool]
    task: asyncio.Task[None] | None = None
    error: str | None = None
    failing_since: float | None = None
    # Replaced each time it is set, so a waiter never misses a change by another waiter's clear().
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def pulse(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


def _owner_key(kind: WorkloadKind, obj: JSON) -> str:
    """Workloads are keyed by name; pods by the workload of their role (`<rbg>-<role>`), so a wait on a
    role's pods subscribes like a wait on its workload."""
    meta = obj["metadata"]
    if kind.key != PODS.key:
        return str(meta["name"])
    labels = meta.get("labels") or {}
    return f"{labels.get(GROUP_NAME_LABEL, '')}-{labels.get(ROLE_LABEL, '')}"


def _api_prefix(kind: WorkloadKind) -> str:
    return "/api/v1" if kind.group_version == "v1" else f"/apis/{kind.group_version}"


class WorkloadCache:
    def __init__(self, kube: KubeClient, *, clock: Callable[[], float] = time.monotonic):
        self.kube = kube
        self.clock = clock
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._pods: dict[tuple[str, str], dict[str, JSON]] = {}  # (namespace, workload) -> name -> pod
        self._waiters: dict[tuple[str, str, str], set[asyncio.Event]] = {}
        self._informers: dict[str, _Informer] = {}
        self._closed = False

    async def ensure(self, kind: WorkloadKind, *, give_up_after: float = DEFAULT_GIVE_UP_SECONDS) -> bool:
        """Start the kind's informer on first use and wait for its initial list; False when the cluster
        does not serve the kind (e.g. no LeaderWorkerSet CRD). Raises `WatchFailing` once the informer has
        been failing for `give_up_after` seconds without a first list (it keeps trying meanwhile)."""
        if self._closed:
            raise RuntimeError("the workload cache is closed")
        inf = self._informers.get(kind.key)
        if inf is None:
            # Recorded before any await: concurrent first callers find it and share one informer.
            inf = _Informer(kind, asyncio.get_running_loop().create_future())
            self._informers[kind.key] = inf
            inf.task = asyncio.create_task(self._run(inf), name=f"informer {kind.label}")
        while not inf.settled.done():
            failure = self._failure_of(inf)
            if failure is not None and failure.seconds >= give_up_after:
                raise WatchFailing(failure)
            timeout = None if failure is None else give_up_after - failure.seconds
            # asyncio.wait, not wait_for: a cancelled caller must not cancel what other callers share.
            changed: asyncio.Future[Any] = asyncio.ensure_future(inf.changed.wait())
            try:
                await asyncio.wait(
                    {inf.settled, changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                changed.cancel()
        if inf.settled.cancelled():  # by close()
            raise RuntimeError("the workload cache is closed")
        return inf.settled.result()

    def failure(self, *kinds: WorkloadKind) -> WatchFailure | None:
        """The longest-running failure among these kinds' informers, or None while they all work."""
        failures = [f for k in kinds if (inf := self._informers.get(k.key)) and (f := self._failure_of(inf))]
        return max(failures, key=lambda f: f.seconds, default=None)

    def _failure_of(self, inf: _Informer) -> WatchFailure | None:
        if inf.failing_since is None or inf.error is None:
            return None
        return WatchFailure(inf.kind.label, inf.error, self.clock() - inf.failing_since)

    async def _run(self, inf: _Informer) -> None:
        kind = inf.kind
        prefix = _api_prefix(kind)
        attempt = 0
        while True:
            try:
                if await self.kube.get_or_none(prefix) is None:
                    # Not cached: a CRD installed later is found by the next caller's probe.
                    if self._informers.get(kind.key) is inf:
                        del self._informers[kind.key]
                    inf.settled.set_result(False)
                    inf.pulse()
                    return
                await list_and_watch(
                    self.kube,
                    f"{prefix}/{kind.plural}",
                    lambda event_type, obj: self._on_event(kind, event_type, obj),
                    on_relist=lambda items: self._on_relist(inf, items),
                    on_error=lambda e: self._on_error(inf, e),
                    params={"labelSelector": kind.selector} if kind.selector else {},
                )
            except asyncio.CancelledError:
                raise
            except WATCH_ERRORS as e:  # the probe
                attempt += 1
                self._on_error(inf, e)
                await asyncio.sleep(backoff(attempt))
            except Exception as e:
                # A bug in handling one object must not leave every wait on the kind hanging on a dead
                # informer: say so loudly and start over from a list.
                attempt += 1
                log.exception("informer crashed; restarting", kind=kind.label)
                self._on_error(inf, e)
                await asyncio.sleep(backoff(attempt))

    def _on_event(self, kind: WorkloadKind, event_type: str, obj: JSON) -> None:
        # Nothing reads who wrote which field, and it is often the larger part of an object: with 1,000
        # groups (7,000 cached objects) it is memory the worker does not need (client-go's informers
        # offer the same trim as a transform).
        obj["metadata"].pop("managedFields", None)
        ns = obj["metadata"].get("namespace", "")  # "" for a cluster-scoped kind
        key = (kind.key, ns, _owner_key(kind, obj))
        if kind.key == PODS.key:
            pods = self._pods.setdefault((ns, key[2]), {})
            if event_type == "DELETED":
                pods.pop(obj["metadata"]["name"], None)
                if not pods:
                    del self._pods[(ns, key[2])]
            else:
                pods[obj["metadata"]["name"]] = obj
        elif event_type == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        for waiter in self._waiters.get(key, ()):
            waiter.set()

    def _on_relist(self, inf: _Informer, items: list[JSON]) -> None:
        """The list is the whole truth of the kind: what it lacks was deleted while no watch ran."""
        kind = inf.kind
        if kind.key == PODS.key:
            self._pods = {}
        else:
            self._objects = {k: v for k, v in self._objects.items() if k[0] != kind.key}
        for item in items:
            self._on_event(kind, "ADDED", item)
        if inf.failing_since is not None:
            log.info("watch recovered", kind=kind.label, after_s=round(self.clock() - inf.failing_since, 1))
        inf.error = inf.failing_since = None
        if not inf.settled.done():
            inf.settled.set_result(True)
        # Every subscriber of the kind, not only those of listed objects: the ones of deleted objects
        # (absent from the list) are the ones that must hear of it.
        self._wake(kind)
        inf.pulse()

    def _on_error(self, inf: _Informer, error: BaseException) -> None:
        inf.error = str(error) or type(error).__name__
        if inf.failing_since is None:
            inf.failing_since = self.clock()
            log.warning("watch failing", kind=inf.kind.label, error=inf.error)
            self._wake(inf.kind)  # so waits say so now, not at their next heartbeat
        inf.pulse()

    def _wake(self, kind: WorkloadKind) -> None:
        for (k, _, _), waiters in self._waiters.items():
            if k == kind.key:
                for w in waiters:
                    w.set()

    def get(self, kind: WorkloadKind, namespace: str, name: str) -> JSON | None:
        return self._objects.get((kind.key, namespace, name))

    def objects(self, kind: WorkloadKind) -> list[JSON]:
        """Every cached object of `kind` (needs `ensure(kind)`)."""
        return [obj for (k, _, _), obj in self._objects.items() if k == kind.key]

    def pods(self, namespace: str, workload: str) -> list[JSON]:
        """The pods of one role (needs `ensure(PODS)`); subscribe with `PODS` and the workload name."""
        return list(self._pods.get((namespace, workload), {}).values())

    @contextlib.contextmanager
    def subscribe(
        self, kind: WorkloadKind, namespace: str, name: str, *also: WorkloadKind
    ) -> Iterator[asyncio.Event]:
        """An event set whenever the object changes, or (`also`, e.g. `PODS`) anything of those kinds
        keyed by the same name, or their informer starts failing or recovers (the caller clears it)."""
        keys = [(k.key, namespace, name) for k in (kind, *also)]
        event = asyncio.Event()
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    async def close(self) -> None:
        """Stop every informer (idempotent); callers still in `ensure` are told the cache is closed."""
        self._closed = True
        informers = list(self._informers.values())
        self._informers.clear()
        tasks = [inf.task for inf in informers if inf.task is not None]
        for inf in informers:
            if not inf.settled.done():
                inf.settled.cancel()
            inf.pulse()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
