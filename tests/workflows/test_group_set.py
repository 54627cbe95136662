"""The RoleBasedGroupSet workflow with its activities stood in by an in-memory set: one group updated at a
time, each waited for, and a newer template interrupting the wait and rolling straight to the newest."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from rbg_flows.messages import (
    RbgKey,
    SetChild,
    SetChildUpdate,
    SetChildWait,
    SetRef,
    SetStatusUpdate,
    SetView,
    Timeouts,
)
from rbg_flows.watcher.signaller import Signaller
from rbg_flows.worker import WORKFLOWS, sandbox_runner

from .standins import CLUSTER


@dataclass
class FakeSet:
    """The set as the cluster holds it: its generation (the template's version), its groups' built
    generations, which groups are Ready; and what the workflow did."""

    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    generation: int = 1
    replicas: int = 3
    built: dict[int, int] = field(default_factory=lambda: {0: 1, 1: 1, 2: 1})
    ready: dict[int, asyncio.Event] = field(default_factory=dict)
    updates: list[tuple[int, int]] = field(default_factory=list)  # (index, generation built)
    reports: list[SetStatusUpdate] = field(default_factory=list)

    def view(self) -> SetView:
        children = [
            SetChild(
                index=i,
                name=f"s-{i}",
                generation=g,
                current=g == self.generation,
                ready=self.ready.setdefault(i, _set(asyncio.Event())).is_set(),
            )
            for i, g in sorted(self.built.items())
        ]
        return SetView(generation=self.generation, replicas=self.replicas, children=children)

    def activities(self) -> list[object]:
        @activity.defn(name="settings")
        async def settings() -> Timeouts:
            return Timeouts(heartbeat_timeout_seconds=5)

        @activity.defn(name="sync_set")
        async def sync_set(ref: SetRef) -> SetView:
            return self.view()

        @activity.defn(name="update_set_child")
        async def update_set_child(upd: SetChildUpdate) -> SetChild:
            self.built[upd.index] = self.generation
            self.updates.append((upd.index, self.generation))
            self.ready[upd.index] = asyncio.Event()  # unready until the test says
            return SetChild(index=upd.index, name=f"s-{upd.index}", generation=self.generation, current=True)

        @activity.defn(name="wait_set_child")
        async def wait_set_child(req: SetChildWait) -> SetChild:
            ready = self.ready[req.index]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 1.0)
            return SetChild(index=req.index, name=f"s-{req.index}", ready=ready.is_set())

        @activity.defn(name="report_set")
        async def report_set(upd: SetStatusUpdate) -> None:
            self.reports.append(upd)

        return [settings, sync_set, update_set_child, wait_set_child, report_set]


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


@pytest.fixture
async def fake(env: WorkflowEnvironment) -> AsyncIterator[tuple[FakeSet, Signaller]]:
    the_set = FakeSet()
    task_queue = f"wf-set-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=the_set.activities(),  # type: ignore[arg-type]
        workflow_runner=sandbox_runner(),
    ):
        yield the_set, Signaller(env.client, task_queue, CLUSTER)


async def until(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_template_change_reaches_one_group_at_a_time(fake: tuple[FakeSet, Signaller]) -> None:
    the_set, signaller = fake
    name = f"s-{uuid.uuid4().hex[:6]}"
    the_set.generation = 2  # the template changed: every group is behind
    await signaller.set_spec("wf", name, the_set.uid, 2)
    await until(lambda: the_set.updates == [(0, 2)], "the first group updated")
    await asyncio.sleep(1.5)
    assert the_set.updates == [(0, 2)], "the second group waits for the first to be Ready"
    the_set.ready[0].set()
    await until(lambda: len(the_set.updates) == 2, "the second group updated")
    assert the_set.updates[1] == (1, 2)
    the_set.ready[1].set()
    await until(lambda: len(the_set.updates) == 3, "the third group updated")
    the_set.ready[2].set()
    await until(
        lambda: any(c.reason == "AllGroupsReady" for r in the_set.reports for c in r.conditions), "Ready"
    )
    assert the_set.updates == [(0, 2), (1, 2), (2, 2)]
    handle = signaller.client.get_workflow_handle(
        RbgKey(cluster=CLUSTER, namespace="wf", name=name).set_workflow_id
    )
    await handle.signal("deleted", the_set.uid)
    await handle.result()


async def test_a_newer_template_interrupts_the_wait_and_rolls_straight_to_the_newest(
    fake: tuple[FakeSet, Signaller],
) -> None:
    the_set, signaller = fake
    name = f"s-{uuid.uuid4().hex[:6]}"
    the_set.generation = 2
    await signaller.set_spec("wf", name, the_set.uid, 2)
    await until(lambda: the_set.updates == [(0, 2)], "the first group updated")
    # Group 0 never gets Ready at generation 2; generation 3 arrives.
    the_set.generation = 3
    await signaller.set_spec("wf", name, the_set.uid, 3)
    await until(lambda: (0, 3) in the_set.updates, "group 0 rebuilt from the newest template")
    for i in range(3):
        the_set.ready[i].set()
        if i < 2:
            await until(lambda i=i: (i + 1, 3) in the_set.updates, f"group {i + 1} on the newest template")
    # No group was ever built from generation 2 but the one in flight when 3 arrived.
    assert the_set.updates == [(0, 2), (0, 3), (1, 3), (2, 3)]
    handle = signaller.client.get_workflow_handle(
        RbgKey(cluster=CLUSTER, namespace="wf", name=name).set_workflow_id
    )
    await handle.signal("deleted", the_set.uid)
    await handle.result()
