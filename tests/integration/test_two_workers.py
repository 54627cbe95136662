"""Two worker processes on one task queue share the load and run no operation twice: many small groups
all become Ready, and Temporal's histories show both workers ran activities (ActivityTaskStarted names
the worker: `<pid>@<host>`, the SDK's default identity), every activity started once, at its first
attempt, every Deploy scheduled the same steps, and each group had exactly one Deploy."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for
from rbg_flows.messages import DEPLOY_WORKFLOW, RBG_NAME, RBG_NAMESPACE
from rbg_flows.sim.procs import ManagedProcess

from .conftest import SimCluster, scratch_namespace
from .orchestrator import Orchestrator
from .rbg_helpers import create_rbg, is_true, rbgs
from .test_watcher import small_group

pytestmark = pytest.mark.sim

GROUPS = int(os.environ.get("RBG_TWO_WORKERS_GROUPS", "100"))


@pytest.fixture
async def tw_namespace(kube: KubeClient) -> AsyncIterator[str]:
    # Not t-*: the session's shared worker must not serve these groups.
    async with scratch_namespace(kube, f"iso-tw-{uuid.uuid4().hex[:8]}") as name:
        yield name


async def histories(client: Client, ns: str) -> dict[str, tuple[str, str | None, list[dict[str, Any]]]]:
    """Every workflow run of the namespace's groups: run id → (workflow type, group name, events)."""
    runs = [wf async for wf in client.list_workflows(f'{RBG_NAMESPACE.name} = "{ns}"')]
    gate = asyncio.Semaphore(16)

    async def one(wf: Any) -> tuple[str, tuple[str, str | None, list[dict[str, Any]]]]:
        async with gate:
            history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        events: list[dict[str, Any]] = history.to_json_dict().get("events", [])
        return wf.run_id, (wf.workflow_type, wf.typed_search_attributes.get(RBG_NAME), events)

    return dict(await asyncio.gather(*(one(wf) for wf in runs)))


def activities_of(events: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The activity types scheduled, in order, and the started events."""
    scheduled = [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if "activityTaskScheduledEventAttributes" in e
    ]
    started = [
        e["activityTaskStartedEventAttributes"] for e in events if "activityTaskStartedEventAttributes" in e
    ]
    return scheduled, started


async def test_two_workers_share_the_groups_and_run_each_step_once(
    sim: SimCluster,
    kube: KubeClient,
    temporal_env: Any,
    temporal_address: str,
    crds: list[str],
    tw_namespace: str,
    tmp_path: Path,
) -> None:
    ns = tw_namespace
    # The default heartbeat timeout (15 s), as deployed: the 5 s other tests use for quick recovery is
    # missed by a worker this busy on 2 cores, and a missed heartbeat starts a second attempt.
    orch = Orchestrator(temporal_address, sim.direct_kubeconfig, f"tw-{ns}", tmp_path, [ns])
    workers: list[ManagedProcess] = []
    try:
        workers = [orch.spawn_worker(log_name=f"worker-{n}.log") for n in ("a", "b")]
        orch.start_watcher()
        start = time.monotonic()
        gate = asyncio.Semaphore(20)

        async def create(i: int) -> None:
            async with gate:
                await create_rbg(kube, ns, small_group(f"g{i:03d}"))

        await asyncio.gather(*(create(i) for i in range(GROUPS)))

        def all_ready(objs: dict[str, Any]) -> bool:
            return sum(is_true(o, "Ready") for o in objs.values()) == GROUPS

        await wait_for(kube, rbgs(ns), all_ready, timeout=300, what=f"{GROUPS} groups Ready")
        print(f"\n{GROUPS} groups Ready {time.monotonic() - start:.1f} s after the first create (2 workers)")
        assert all(w.alive() for w in workers), "\n".join(w.tail(40) for w in workers)

        # Ready is written by the Deploy's last step: wait for the workflows to close before reading them.
        client: Client = temporal_env.client
        query = f'{RBG_NAMESPACE.name} = "{ns}" AND WorkflowType = "{DEPLOY_WORKFLOW}"'
        deadline = time.monotonic() + 60
        while (await client.count_workflows(f'{query} AND ExecutionStatus = "Running"')).count or (
            await client.count_workflows(query)
        ).count < GROUPS:
            assert time.monotonic() < deadline, "the Deploy workflows did not all close"
            await asyncio.sleep(0.5)
        runs = await histories(client, ns)
        deploys = Counter(name for kind, name, _ in runs.values() if kind == DEPLOY_WORKFLOW)
        assert deploys == {f"g{i:03d}": 1 for i in range(GROUPS)}

        by_worker: Counter[str] = Counter()
        shapes: Counter[tuple[str, ...]] = Counter()
        retried = []
        for kind, name, events in runs.values():
            scheduled, started = activities_of(events)
            assert len(started) == len(scheduled), (kind, name, scheduled)
            retried += [
                (kind, name, t, s.get("attempt"), (s.get("lastFailure") or {}).get("message"))
                for t, s in zip(scheduled, started, strict=True)
                if s.get("attempt", 1) != 1
            ]
            by_worker.update(s["identity"] for s in started)
            if kind == DEPLOY_WORKFLOW:
                shapes[tuple(scheduled)] += 1
        print(f"activity shapes: {dict(shapes)}")
        assert retried == [], retried
        # Identical groups, identical Deploys: no step was scheduled twice anywhere.
        assert len(shapes) == 1, shapes
        host = socket.gethostname()
        assert set(by_worker) == {f"{w.pid}@{host}" for w in workers}, by_worker
        print(f"activities by worker: {dict(by_worker)}; a Deploy's steps: {next(iter(shapes))}")
    finally:
        for w in workers:
            w.stop()
        orch.stop()
