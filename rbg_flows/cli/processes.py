"""`rbg-flows worker` and `rbg-flows watcher`: the two long-running processes.

Only flags here: each process's code is imported when it runs, so the watcher never loads the worker's
Kubernetes client, workflows or activities (and `rbg-flows --help` loads neither).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from rbg_flows.codec import AesGcmCodec, CodecError, add_key_file_argument, load_codec
from rbg_flows.messages import TASK_QUEUE, Timeouts, check_cluster_id, cluster_id_from_uid, task_queue_for
from rbg_flows.observability import DEFAULT_HEALTH_ADDRESS, DEFAULT_METRICS_ADDRESS
from rbg_flows.shutdown import stop_event
from rbg_flows.temporal import DEFAULT_ADDRESS, DEFAULT_NAMESPACE, connect, ensure_search_attributes

if TYPE_CHECKING:
    from temporalio.converter import PayloadCodec
    from temporalio.runtime import Runtime
    from temporalio.worker import Worker

    from rbg_flows.kube.client import KubeClient
    from rbg_flows.watcher.run import LeaseOptions

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Endpoints:
    metrics: str | None
    health: str | None
    chosen: list[str] = field(default_factory=list)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temporal-address", default=os.environ.get("RBG_TEMPORAL_ADDRESS", DEFAULT_ADDRESS))
    p.add_argument(
        "--temporal-namespace", default=os.environ.get("RBG_TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE)
    )
    add_cluster_id_argument(p)
    p.add_argument(
        "--task-queue",
        default=os.environ.get("RBG_TASK_QUEUE") or None,
        help=f"default: {TASK_QUEUE}.<cluster id> (one per cluster)",
    )
    p.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: in-cluster or ~/.kube/config"
    )
    add_key_file_argument(p)
    p.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=os.environ.get("RBG_LOG_FORMAT") or None,
        help="default: json, or console on a terminal",
    )
    p.add_argument(
        "--metrics-address",
        default=os.environ.get("RBG_METRICS_ADDRESS"),
        help=f"host:port serving /metrics ('' to disable; default {DEFAULT_METRICS_ADDRESS})",
    )


def endpoints(args: argparse.Namespace, health_default: str | None = None) -> Endpoints:
    """Where the process serves /metrics and /healthz (None: not served), and which addresses the
    operator chose: a chosen one that cannot be bound fails the start, a default one only warns."""
    health_flag = getattr(args, "health_address", None)
    return Endpoints(
        metrics=(DEFAULT_METRICS_ADDRESS if args.metrics_address is None else args.metrics_address) or None,
        health=(health_default if health_flag is None else health_flag) or None,
        chosen=[a for a in (args.metrics_address, health_flag) if a],
    )


def _configure_logs(args: argparse.Namespace) -> None:
    from rbg_flows.cli import logs

    json = None if args.log_format is None else args.log_format == "json"
    logs.configure(getattr(args, "log_level", "info"), json=json)


def _cluster_id_arg(value: str) -> str:
    try:
        return check_cluster_id(value) if value else ""
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_cluster_id_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster-id",
        type=_cluster_id_arg,
        default=_cluster_id_arg(os.environ.get("RBG_CLUSTER_ID", "")),
        help="this installation's id in workflow ids, the task queue and RbgCluster (several clusters may "
        "share one Temporal namespace); default: the first 8 hex characters of the kube-system UID",
    )


async def cluster_id_of(kube: KubeClient, configured: str = "") -> str:
    """The configured cluster id, else the one derived from the `kube-system` namespace's UID (present
    on every cluster, created with it and never re-created)."""
    if configured:
        return configured
    ns = await kube.get("/api/v1/namespaces/kube-system")
    return cluster_id_from_uid(ns["metadata"]["uid"])


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("worker", help="run the Temporal worker (workflows and activities)")
    add_common(w)
    w.add_argument(
        "--kube-qps", type=float, default=100.0, help="client-side rate limit towards the API server"
    )
    w.add_argument(
        "--ready-deadline",
        type=float,
        default=Timeouts().ready_deadline_seconds,
        help="seconds a role may take to become ready before Progressing=False (read at each operation)",
    )
    w.add_argument("--heartbeat-timeout", type=float, default=Timeouts().heartbeat_timeout_seconds)
    w.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=2000,
        help="activity slots of this worker (waits are cheap coroutines on the shared watch cache)",
    )
    w.add_argument(
        "--max-concurrent-workflow-tasks",
        type=int,
        default=100,
        help="workflow task slots of this worker (each a short CPU-bound step of one workflow)",
    )
    w.add_argument(
        "--max-cached-workflows",
        type=int,
        default=250,
        help="workflow runs kept in memory between their tasks; an evicted one replays its (bounded) "
        "history at its next task. Most groups sit idle, so a few hundred suffice (the SDK's 1,000 "
        "held every idle group of a large cluster)",
    )
    w.add_argument(
        "--health-address",
        default=os.environ.get("RBG_HEALTH_ADDRESS"),
        help="host:port serving /healthz: 200 once connected to Temporal and polling ('' to disable; "
        f"default {DEFAULT_HEALTH_ADDRESS})",
    )
    w.add_argument(
        "--no-register",
        action="store_true",
        help="fail instead of registering missing search attributes (production Temporal)",
    )
    w.set_defaults(func=run_worker)

    wa = sub.add_parser("watcher", help="run the kopf watcher that signals the workflows")
    add_common(wa)
    scope = wa.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch only these (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    wa.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL ('' to disable)"
    )
    wa.add_argument(
        "--resync-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="end entity workflows whose RoleBasedGroup is gone: at start and this often (0: only at start)",
    )
    election = wa.add_argument_group(
        "leader election", "only the holder of a coordination.k8s.io Lease watches; the others stand by"
    )
    election.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="watch at once, without a Lease (one watcher only: two would both signal)",
    )
    election.add_argument(
        "--lease-name",
        default=os.environ.get("RBG_LEASE_NAME", ""),
        help="default: rbg-flows-watcher-<cluster id>",
    )
    election.add_argument(
        "--lease-namespace",
        default=os.environ.get("RBG_LEASE_NAMESPACE", ""),
        help="default: the pod's namespace (POD_NAMESPACE or its service account's), else 'default'",
    )
    election.add_argument(
        "--lease-duration",
        type=float,
        default=10.0,  # watcher.lease.DEFAULT_DURATION (not imported: the CLI loads subcommands lazily)
        metavar="SECONDS",
        help="how long a standby waits after the holder's last renewal before it takes over",
    )
    election.add_argument(
        "--lease-renew-deadline",
        type=float,
        metavar="SECONDS",
        help="the holder stops watching and exits when it could not renew for this long "
        "(default: 2/3 of the duration)",
    )
    election.add_argument(
        "--lease-retry-period",
        type=float,
        metavar="SECONDS",
        help="between two attempts to take or renew the Lease (default: 2/15 of the duration)",
    )
    wa.set_defaults(func=run_watcher)


async def _kube(
    args: argparse.Namespace, qps: float | None = None, component: str | None = None
) -> KubeClient:
    from rbg_flows.kube.client import KubeClient, user_agent

    agent = user_agent(component)
    if args.kubeconfig:
        return await KubeClient.from_kubeconfig(args.kubeconfig, qps=qps, agent=agent)
    from kubernetes_asyncio.config import ConfigException

    try:
        # Remembers its source, so a 401 re-reads the rotated service-account token.
        return KubeClient.from_incluster(qps=qps, agent=agent)
    except ConfigException:
        return await KubeClient.from_kubeconfig(None, qps=qps, agent=agent)


def _codec(args: argparse.Namespace) -> AesGcmCodec | None:
    """The codec, checked before anything starts: a bad key file ends the process with its reason."""
    try:
        return load_codec(args.codec_key_file)
    except CodecError as e:
        raise SystemExit(f"error: {e}") from None


def run_worker(args: argparse.Namespace) -> int:
    from rbg_flows.observability.sdk import temporal_metrics
    from rbg_flows.temporal import run_with_runtime

    _configure_logs(args)
    codec = _codec(args)
    sdk_metrics = temporal_metrics()
    where = endpoints(args, DEFAULT_HEALTH_ADDRESS)

    async def main(runtime: Runtime) -> None:
        from rbg_flows.observability.http import serving

        running: list[Worker] = []
        drain = asyncio.create_task(sdk_metrics.drain_forever(), name="sdk-metrics")
        try:
            async with serving(
                metrics=where.metrics,
                health=where.health,
                ready=lambda: any(w.is_running and not w.is_shutdown for w in running),
                required=where.chosen,
            ):
                await _serve_worker(args, runtime, codec, running)
        finally:
            drain.cancel()

    run_with_runtime(main, metrics=sdk_metrics.buffer)
    return 0


async def _serve_worker(
    args: argparse.Namespace, runtime: Runtime, codec: PayloadCodec | None, running: list[Worker]
) -> None:
    from temporalio.client import Client

    from rbg_flows.kube.cache import WorkloadCache
    from rbg_flows.observability.activity import ActivityObservability
    from rbg_flows.observability.metrics import WORKER_RUNNING
    from rbg_flows.worker import build_worker

    client = await connect(args.temporal_address, args.temporal_namespace, runtime, codec)
    # A client interceptor that is also a worker interceptor: every activity of the worker built on this
    # client binds its log context and counts its retries and failures.
    config = client.config()
    config["interceptors"] = [*config["interceptors"], ActivityObservability()]
    client = Client(**config)
    await ensure_search_attributes(client, register=not args.no_register)
    kube = await _kube(args, qps=args.kube_qps, component="worker")
    cache = WorkloadCache(kube)
    stop = stop_event()
    try:
        cluster = await cluster_id_of(kube, args.cluster_id)
        task_queue = args.task_queue or task_queue_for(cluster)
        if cluster not in task_queue:
            # Legitimate with one cluster per Temporal namespace; with several, their groups would reach
            # this worker, which fails them (WrongCluster).
            log.warning("the task queue does not name this cluster", task_queue=task_queue, cluster=cluster)
        timeouts = Timeouts(
            ready_deadline_seconds=args.ready_deadline,
            heartbeat_timeout_seconds=args.heartbeat_timeout,
            cluster=cluster,
        )
        worker = build_worker(
            client,
            kube,
            cache,
            task_queue,
            timeouts,
            max_concurrent_activities=args.max_concurrent_activities,
            max_concurrent_workflow_tasks=args.max_concurrent_workflow_tasks,
            max_cached_workflows=args.max_cached_workflows,
        )
        async with worker:
            running.append(worker)
            WORKER_RUNNING.labels(task_queue=task_queue).set(1)
            log.info("worker running", task_queue=task_queue, cluster=cluster, temporal=args.temporal_address)
            try:
                await stop.wait()
            finally:
                WORKER_RUNNING.labels(task_queue=task_queue).set(0)
    finally:
        await cache.close()
        await kube.close()


def _lease(args: argparse.Namespace) -> LeaseOptions | None:
    from rbg_flows.watcher.lease import LeaseTimings
    from rbg_flows.watcher.run import LeaseOptions

    if not args.leader_election:
        return None
    try:
        timings = LeaseTimings.derived(
            args.lease_duration, args.lease_renew_deadline, args.lease_retry_period
        )
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return LeaseOptions(name=args.lease_name, namespace=args.lease_namespace, timings=timings)


def run_watcher(args: argparse.Namespace) -> int:
    from rbg_flows.watcher.run import WatcherOptions, run

    _codec(args)
    lease = _lease(args)

    _configure_logs(args)
    where = endpoints(args)
    return run(
        WatcherOptions(
            temporal_address=args.temporal_address,
            temporal_namespace=args.temporal_namespace,
            task_queue=args.task_queue or "",
            cluster_id=args.cluster_id,
            kubeconfig=args.kubeconfig,
            namespaces=list(args.namespace),
            liveness=args.liveness or None,
            resync_seconds=args.resync_every,
            codec_key_file=args.codec_key_file,
            metrics_address=where.metrics,
            metrics_required=bool(where.chosen),
            lease=lease,
        )
    )
