"""The worker's workflow runner passes every module through (for speed) but must still refuse
non-deterministic calls in workflow code."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from rbg_flows.worker import sandbox_runner


@workflow.defn(name="ReadsTheWallClock")
class ReadsTheWallClock:
    @workflow.run
    async def run(self) -> float:
        import time

        return time.time()


async def test_the_worker_sandbox_still_refuses_a_wall_clock_read(env: WorkflowEnvironment) -> None:
    queue = f"sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=queue, workflows=[ReadsTheWallClock], workflow_runner=sandbox_runner()
    ):
        handle = await env.client.start_workflow(
            ReadsTheWallClock.run,
            id=f"clock-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=5),
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    failures = [
        e.workflow_task_failed_event_attributes.failure.message
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_task_failed_event_attributes")
    ]
    assert failures and "Cannot access time.time.__call__ from inside a workflow" in failures[0]
