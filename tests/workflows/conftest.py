"""Workflow tests: the real workflows on a local Temporal dev server, activities stood in.

No cluster: these run in seconds and cover the orchestration logic (supersede, controls, deletion,
continue-as-new, deadlines). One test server per session; each test gets its own task queue and worker.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from rbg_flows.messages import GroupState, RbgKey
from rbg_flows.temporal import start_dev_server
from rbg_flows.watcher.signaller import Signaller
from rbg_flows.worker import WORKFLOWS, sandbox_runner

from .standins import CLUSTER, StandIns

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# Small, so the entity continues as new every few operations: every test also crosses that boundary.
SUGGEST_CONTINUE_AS_NEW_AFTER = 30


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # The local dev server rather than the time-skipping test server: the latter serves no custom search
    # attributes (the entity upserts RbgPhase), and nothing here waits on a long timer (settings are
    # stood in with short durations).
    environment = await start_dev_server(
        extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AFTER}",
        ]
    )
    async with environment:
        yield environment


class Group:
    """One RoleBasedGroup as the watcher would report it, and its entity workflow."""

    def __init__(
        self, client: Client, task_queue: str, standins: StandIns, example: str, cluster: str = CLUSTER
    ) -> None:
        self.client = client
        self.standins = standins
        self.signaller = Signaller(client, task_queue, cluster)
        obj = yaml.safe_load((EXAMPLES / example).read_text())
        name = f"{obj['metadata']['name']}-{uuid.uuid4().hex[:6]}"
        obj["metadata"].update(name=name, namespace="wf", uid=str(uuid.uuid4()), generation=1)
        self.obj: dict[str, Any] = obj
        self.key = RbgKey(cluster=cluster, namespace="wf", name=name)
        standins.rbg_objects[name] = obj

    @property
    def handle(self) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(self.key.workflow_id)

    async def apply(self, change: Callable[[dict[str, Any]], None] | None = None) -> int:
        """Signal the spec (after `change`, a new generation), as the watcher does on a watch event."""
        if change is not None:
            obj = copy.deepcopy(self.obj)
            change(obj["spec"])
            obj["metadata"]["generation"] += 1
            self.obj = obj
            self.standins.rbg_objects[self.key.name] = obj
        await self.signaller.spec(self.obj)
        return int(self.obj["metadata"]["generation"])

    async def state(self) -> GroupState:
        state: GroupState = await self.handle.query("get_state", result_type=GroupState)
        return state

    async def until(self, what: str, pred: Callable[[GroupState], bool], timeout: float = 30.0) -> GroupState:
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            s = await self.state()
            if pred(s):
                return s
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; state: {s.model_dump_json(indent=1)}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def standins() -> StandIns:
    return StandIns()


@pytest.fixture
async def worker(env: WorkflowEnvironment, standins: StandIns) -> AsyncIterator[str]:
    task_queue = f"wf-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=list(standins.activities()),
        workflow_runner=sandbox_runner(),  # the worker's own
    ):
        yield task_queue


@pytest.fixture
def group(env: WorkflowEnvironment, worker: str, standins: StandIns) -> Callable[..., Group]:
    def make(example: str = "pd-disaggregation.yaml") -> Group:
        return Group(env.client, worker, standins, example)

    return make


def new_image(tag: str) -> Callable[[dict[str, Any]], None]:
    """A spec change: prefill and decode on another SGLang image (an upgrade of the PD example)."""

    def change(spec: dict[str, Any]) -> None:
        for role in spec["roles"]:
            if role["name"] in ("prefill", "decode"):
                role["template"]["spec"]["containers"][0]["image"] = f"lmsysorg/sglang:{tag}"

    return change
