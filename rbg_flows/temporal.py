"""Connecting to Temporal: one client factory (pydantic converter, own runtime), the worker, and the
search attributes every workflow relies on."""

from __future__ import annotations

import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker

from rbg_flows.activities.group import GroupActivities
from rbg_flows.activities.rollout import RolloutActivities
from rbg_flows.kube.client import KubeClient
from rbg_flows.workflows.deploy import DeployWorkflow
from rbg_flows.workflows.entity import SEARCH_ATTRIBUTES, RoleBasedGroupWorkflow
from rbg_flows.workflows.upgrade import UpgradeWorkflow

log = structlog.get_logger(__name__)
T = TypeVar("T")
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
WORKFLOWS = (RoleBasedGroupWorkflow, DeployWorkflow, UpgradeWorkflow)

_INDEXED = {
    "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def search_attribute_flags() -> list[str]:
    """`--search-attribute` flags for `temporal server start-dev`, so they exist before any workflow."""
    return [
        f"--search-attribute={k.name}={'Keyword' if k.indexed_value_type.name.endswith('KEYWORD') else 'Int'}"
        for k in SEARCH_ATTRIBUTES
    ]


async def connect(address: str, namespace: str, runtime: Runtime) -> Client:
    return await Client.connect(
        address, namespace=namespace, runtime=runtime, data_converter=pydantic_data_converter
    )


async def ensure_search_attributes(client: Client, *, register: bool = True) -> None:
    """Check (and on a dev server, register) the search attributes: an unregistered one makes every
    upsert fail its workflow task, which wedges the workflow silently."""
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    have = {**resp.custom_attributes, **resp.system_attributes}
    missing = {
        k.name: _INDEXED[k.indexed_value_type.name.rsplit("_", 1)[-1]]
        for k in SEARCH_ATTRIBUTES
        if k.name not in have
    }
    if not missing:
        return
    if not register:
        raise RuntimeError(
            f"search attributes not registered in namespace {client.namespace}: {sorted(missing)}"
        )
    log.info("registering search attributes", names=sorted(missing))
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
    )


def build_worker(client: Client, kube: KubeClient, task_queue: str, **kw: Any) -> Worker:
    activities = GroupActivities(kube)
    rollout = RolloutActivities(kube, activities.cache)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            activities.prepare,
            activities.record_revision,
            activities.apply_role,
            activities.wait_role,
            activities.report,
            rollout.set_partition,
            rollout.step_role,
            rollout.wait_step,
            rollout.rewrite_spec,
            rollout.prune_roles,
        ],
        # Waits are cheap coroutines on a shared watch cache, so thousands may run at once.
        max_concurrent_activities=kw.pop("max_concurrent_activities", 2000),
        **kw,
    )


def new_runtime() -> Runtime:
    return Runtime(telemetry=TelemetryConfig())


def run_with_runtime(main: Callable[[Runtime], Coroutine[Any, Any, T]]) -> T:
    """Run an entry point with its own Temporal runtime, then drop it and collect garbage before the
    interpreter finalises (temporalio sdk-python #300: otherwise a Rust thread may call into a dying
    interpreter and crash the process after its work is done)."""
    import asyncio

    runtime: Runtime | None = new_runtime()
    try:
        assert runtime is not None
        return asyncio.run(main(runtime))
    finally:
        runtime = None
        gc.collect()
