"""`rbg-flows worker` and `rbg-flows watcher`: the two long-running processes."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

import structlog
from temporalio.runtime import Runtime

from rbg_flows.kube.client import KubeClient
from rbg_flows.temporal import (
    DEFAULT_ADDRESS,
    DEFAULT_NAMESPACE,
    build_worker,
    connect,
    ensure_search_attributes,
)
from rbg_flows.workflows.types import TASK_QUEUE, Timeouts

log = structlog.get_logger(__name__)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temporal-address", default=os.environ.get("RBG_TEMPORAL_ADDRESS", DEFAULT_ADDRESS))
    p.add_argument(
        "--temporal-namespace", default=os.environ.get("RBG_TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE)
    )
    p.add_argument("--task-queue", default=os.environ.get("RBG_TASK_QUEUE", TASK_QUEUE))
    p.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: in-cluster or ~/.kube/config"
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("worker", help="run the Temporal worker (workflows and activities)")
    add_common(w)
    w.add_argument(
        "--kube-qps", type=float, default=100.0, help="client-side rate limit towards the API server"
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
        "--ready-deadline",
        type=float,
        default=Timeouts().ready_deadline_seconds,
        help="seconds a role may take to become ready before Progressing=False",
    )
    wa.add_argument("--heartbeat-timeout", type=float, default=Timeouts().heartbeat_timeout_seconds)
    wa.set_defaults(func=run_watcher)


async def _kube(args: argparse.Namespace, qps: float | None = None) -> KubeClient:
    if args.kubeconfig:
        return await KubeClient.from_kubeconfig(args.kubeconfig, qps=qps)
    from kubernetes_asyncio.client import Configuration
    from kubernetes_asyncio.config import ConfigException, load_incluster_config

    try:
        cfg = Configuration()
        load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return KubeClient(cfg, qps=qps)
    except ConfigException:
        return await KubeClient.from_kubeconfig(None, qps=qps)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_worker(args: argparse.Namespace) -> int:
    from rbg_flows.temporal import run_with_runtime

    async def main(runtime: Runtime) -> None:
        client = await connect(args.temporal_address, args.temporal_namespace, runtime)
        await ensure_search_attributes(client, register=not args.no_register)
        kube = await _kube(args, qps=args.kube_qps)
        stop = _stop_event()
        try:
            async with build_worker(client, kube, args.task_queue):
                log.info("worker running", task_queue=args.task_queue, temporal=args.temporal_address)
                await stop.wait()
        finally:
            await kube.close()

    run_with_runtime(main)
    return 0


def run_watcher(args: argparse.Namespace) -> int:
    import kopf

    from rbg_flows.temporal import run_with_runtime
    from rbg_flows.watcher.handlers import build_registry
    from rbg_flows.watcher.signaller import Signaller

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig

    async def main(runtime: Runtime) -> None:
        client = await connect(args.temporal_address, args.temporal_namespace, runtime)
        timeouts = Timeouts(
            ready_deadline_seconds=args.ready_deadline, heartbeat_timeout_seconds=args.heartbeat_timeout
        )
        registry = build_registry(Signaller(client, args.task_queue, timeouts))
        stop = _stop_event()
        log.info("watcher running", namespaces=args.namespace or "all", task_queue=args.task_queue)
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness or None,
            stop_flag=stop,
        )

    run_with_runtime(main)
    return 0
