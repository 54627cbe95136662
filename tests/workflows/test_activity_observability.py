"""The activity interceptor on a real worker: every attempt's log context carries the group, operation
and workflow ids, and a retry is counted under the error type of the attempt that failed."""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from rbg_flows.messages import RbgKey
from rbg_flows.observability.activity import ActivityObservability
from rbg_flows.observability.metrics import REGISTRY


@activity.defn(name="observability_probe")
async def probe(fail_with: str) -> dict[str, Any]:
    if activity.info().attempt == 1:
        raise ApplicationError("the API server said 409", type=fail_with)
    return dict(structlog.contextvars.get_contextvars())


@activity.defn(name="observability_refused")
async def refused(_: str) -> None:
    raise ApplicationError("forbidden", type="Kube403", non_retryable=True)


@workflow.defn(name="ObservabilityProbe")
class ProbeWorkflow:
    @workflow.run
    async def run(self, fail_with: str) -> dict[str, Any]:
        retry = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3)
        ctx: dict[str, Any] = await workflow.execute_activity(
            probe, fail_with, start_to_close_timeout=timedelta(seconds=30), retry_policy=retry
        )
        local: dict[str, Any] = await workflow.execute_local_activity(
            probe, fail_with, start_to_close_timeout=timedelta(seconds=30), retry_policy=retry
        )
        # Its failure is the point: the test reads it from the metrics.
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                refused, "", start_to_close_timeout=timedelta(seconds=30), retry_policy=retry
            )
        return {"activity": ctx, "local": local}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_log_context_and_retries_by_error_type(env: WorkflowEnvironment) -> None:
    config = env.client.config()
    config["interceptors"] = [ActivityObservability()]
    client = Client(**config)
    queue = f"observability-{uuid.uuid4().hex[:8]}"
    key = RbgKey(namespace="team-a", name=f"llama.{uuid.uuid4().hex[:6]}")  # a name with a dot
    wid = key.operation_id("upgrade", 3)
    error = f"Kube409x{uuid.uuid4().hex[:4]}"  # this test's own label value
    refused_before = value(
        "rbg_flows_activity_failures_total",
        activity="observability_refused",
        error_type="Kube403",
        retryable="false",
    )
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ProbeWorkflow],
        activities=[probe, refused],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        out = await client.execute_workflow(ProbeWorkflow.run, error, id=wid, task_queue=queue)

    for ctx in (out["activity"], out["local"]):
        assert ctx["group"] == f"team-a/{key.name}"
        assert ctx["operation"] == "upgrade" and ctx["operation_id"] == wid and ctx["workflow_id"] == wid
        assert ctx["run_id"] and ctx["activity"] == "observability_probe" and ctx["attempt"] == 2
    # One retry each (the activity and the local activity), under the error of the failed attempt.
    assert value("rbg_flows_activity_retries_total", activity="observability_probe", error_type=error) == 2
    assert (
        value(
            "rbg_flows_activity_failures_total",
            activity="observability_probe",
            error_type=error,
            retryable="true",
        )
        == 2
    )
    # A non-retryable failure is counted as such and never retried.
    assert (
        value(
            "rbg_flows_activity_failures_total",
            activity="observability_refused",
            error_type="Kube403",
            retryable="false",
        )
        == refused_before + 1
    )
