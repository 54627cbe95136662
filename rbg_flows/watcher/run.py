"""The watcher process: kopf with our handlers, and the resync beside it.

Light to import: kopf and the handlers are loaded by `load()` when the process starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio.runtime import Runtime

from rbg_flows.codec import load_codec
from rbg_flows.observability.metrics import WATCHER_LEADER, WATCHER_RUNNING
from rbg_flows.shutdown import set_on_signals, stop_event
from rbg_flows.temporal import connect, run_with_runtime
from rbg_flows.watcher.lease import LeaseTimings

log = structlog.get_logger(__name__)

DEFAULT_RESYNC_SECONDS = 300.0


@dataclass(frozen=True)
class WatcherOptions:
    temporal_address: str
    temporal_namespace: str
    task_queue: str  # empty: the cluster's own (`rbg-flows.<cluster>`)
    kubeconfig: str | None = None
    namespaces: list[str] = field(default_factory=list)  # kopf patterns; empty: every namespace
    liveness: str | None = None
    resync_seconds: float = DEFAULT_RESYNC_SECONDS  # 0: only at start
    codec_key_file: str | None = None  # else RBG_CODEC_KEY_FILE / RBG_CODEC_KEY; none: payloads in clear
    cluster_id: str = ""  # empty: from the kube-system namespace's UID
    metrics_address: str | None = None  # host:port of /metrics; None: not served
    metrics_required: bool = False  # the operator chose the address: failing to bind it fails the start
    # Leader election: only the Lease's holder runs kopf and the resync; None: election off (one watcher).
    lease: LeaseOptions | None = None


@dataclass(frozen=True)
class LeaseOptions:
    name: str = ""  # empty: rbg-flows-watcher-<cluster id>
    namespace: str = ""  # empty: the pod's namespace (lease.default_namespace)
    timings: LeaseTimings = field(default_factory=LeaseTimings)


def read_cluster_id(kubeconfig: str | None) -> str:
    """The default cluster id, read through the official client (the watcher's login). Blocking."""
    from kubernetes import client

    from rbg_flows.messages import cluster_id_from_uid
    from rbg_flows.watcher import cluster

    with client.ApiClient(cluster.load_config(kubeconfig)) as api:
        ns: Any = client.CoreV1Api(api).read_namespace("kube-system", _request_timeout=30)
        return cluster_id_from_uid(ns.metadata.uid)


def load() -> Callable[[WatcherOptions, Runtime], Coroutine[Any, Any, None]]:
    """Import what the process runs, keeping the worker's async Kubernetes client out: kopf imports
    `kubernetes_asyncio` whenever it is installed, only to recognise that client's model objects in
    isinstance checks, and the handlers pass it none (they get dicts). A process that already loaded the
    client (a test session) keeps it."""
    sys.modules.setdefault("kubernetes_asyncio", None)  # type: ignore[arg-type]
    from rbg_flows.watcher import cluster, handlers, resync  # noqa: F401  (kopf comes with them)

    return serve


async def serve(opts: WatcherOptions, runtime: Runtime) -> None:
    import kopf

    from rbg_flows.messages import check_cluster_id, task_queue_for
    from rbg_flows.watcher import cluster
    from rbg_flows.watcher.handlers import build_registry
    from rbg_flows.watcher.resync import ExistingGroup, resync_forever
    from rbg_flows.watcher.signaller import Signaller

    cluster_id = check_cluster_id(opts.cluster_id) if opts.cluster_id else ""
    cluster_id = cluster_id or await asyncio.to_thread(read_cluster_id, opts.kubeconfig)
    task_queue = opts.task_queue or task_queue_for(cluster_id)
    client = await connect(
        opts.temporal_address, opts.temporal_namespace, runtime, load_codec(opts.codec_key_file)
    )
    signaller = Signaller(client, task_queue, cluster_id)
    registry = build_registry(signaller, kubeconfig=opts.kubeconfig)
    stop = stop_event()

    @kopf.on.startup(registry=registry)
    async def _stop_through_our_flag(**_: Any) -> None:
        # kopf replaces the process's SIGTERM/SIGINT handlers with its own, which stop it without the stop
        # flag it was given; its waiter for that flag is then a task it waits 5 s for at every shutdown
        # (a rolling update, each test's orchestrator). Ours set the flag: kopf stops through it at once.
        set_on_signals(stop)

    WATCHER_RUNNING.set(1)

    async def unserved(group: ExistingGroup) -> None:
        # Read afresh: the listing had its identity only, and the group may have changed or gone since.
        body = await asyncio.to_thread(cluster.get_group, opts.kubeconfig, group.namespace, group.name)
        if body is not None and body["metadata"]["uid"] == group.uid:
            await signaller.spec(body)

    async def operate(stop_flag: asyncio.Event) -> None:
        log.info(
            "watcher running", namespaces=opts.namespaces or "all", task_queue=task_queue, cluster=cluster_id
        )
        # Concurrent with kopf's first listing on purpose: either order of a resync's deleted(old uid) and
        # a spec signal for a re-created group ends in the same place (the entity compares uids).
        resync = asyncio.create_task(
            resync_forever(
                client,
                task_queue,
                opts.namespaces,
                functools.partial(cluster.list_groups, opts.kubeconfig),
                signaller.deleted_by_id,
                opts.resync_seconds,
                cluster=cluster_id,
                signal_unserved=unserved,
            ),
            name="resync",
        )
        try:
            await kopf.operator(
                registry=registry,
                standalone=True,
                clusterwide=not opts.namespaces,
                namespaces=opts.namespaces,
                liveness_endpoint=opts.liveness or None,
                stop_flag=stop_flag,
            )
        finally:
            resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resync

    if opts.lease is None:
        WATCHER_LEADER.set(1)
        try:
            await operate(stop)
        finally:
            WATCHER_LEADER.set(0)
        return
    await elect(opts, opts.lease, cluster_id, operate, stop)


async def elect(
    opts: WatcherOptions,
    lease: LeaseOptions,
    cluster_id: str,
    operate: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
) -> None:
    from rbg_flows.incluster import default_namespace
    from rbg_flows.watcher import cluster
    from rbg_flows.watcher.elector import Elector, KubeLeaseStore
    from rbg_flows.watcher.lease import identity, lease_name
    from rbg_flows.watcher.standby import standby_endpoint

    cfg = await asyncio.to_thread(cluster.load_config, opts.kubeconfig)
    name, namespace = lease.name or lease_name(cluster_id), lease.namespace or default_namespace()
    store = KubeLeaseStore(cfg, namespace, name, request_timeout=lease.timings.renew_deadline)
    me = identity()
    log.info("leader election", lease=f"{namespace}/{name}", identity=me, duration=lease.timings.duration)
    try:
        await Elector(store, me, lease.timings).lead(operate, stop, lambda: standby_endpoint(opts.liveness))
    finally:
        store.close()


def run(opts: WatcherOptions) -> int:
    from rbg_flows.observability.http import serving
    from rbg_flows.observability.sdk import temporal_metrics
    from rbg_flows.watcher.elector import LeadershipLost

    serve = load()
    sdk_metrics = temporal_metrics()

    async def main(runtime: Runtime) -> None:
        drain = asyncio.create_task(sdk_metrics.drain_forever(), name="sdk-metrics")
        required = [opts.metrics_address] if opts.metrics_required and opts.metrics_address else []
        try:
            async with serving(metrics=opts.metrics_address, required=required):
                try:
                    await serve(opts, runtime)
                finally:
                    WATCHER_RUNNING.set(0)
        finally:
            drain.cancel()

    try:
        run_with_runtime(main, metrics=sdk_metrics.buffer)
    except LeadershipLost as e:
        # What client-go does: a process that may still believe it leads is not safe to keep; its
        # supervisor (the Deployment) starts a fresh one, which stands by.
        log.error("leadership lost: exiting", reason=str(e))
        return 1
    return 0
