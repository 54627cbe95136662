"""What the Temporal UI finds: a group's entity and every operation by the group's search attributes, and
a worker that refuses a group of another cluster."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from rbg_flows.messages import RBG_CLUSTER, RBG_NAME, RBG_OPERATION, RBG_REVISION, Timeouts

from .conftest import Group, new_image
from .standins import CLUSTER, StandIns

Make = Callable[..., Group]
VISIBILITY_DEADLINE = 60.0  # the dev server's visibility store is eventually consistent


Row = tuple[str, str, str | None, int | None, str | None]  # id, type, RbgOperation, RbgRevision, RbgCluster


async def _rows(client: Client, query: str) -> list[Row]:
    rows: list[Row] = []
    async for wf in client.list_workflows(query):
        a = wf.typed_search_attributes
        rows.append((wf.id, wf.workflow_type, a.get(RBG_OPERATION), a.get(RBG_REVISION), a.get(RBG_CLUSTER)))
    # One row per workflow: the entity is listed once per run (it continues as new every few operations).
    return sorted(set(rows))


async def _until_listed(client: Client, query: str, want: list[Row]) -> None:
    """Poll until `query` lists exactly `want`: an execution and each upsert reach the visibility store a
    moment after the event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBILITY_DEADLINE
    while (rows := await _rows(client, query)) != sorted(want):
        if loop.time() > deadline:
            raise AssertionError(f"{query!r} listed {rows} after {VISIBILITY_DEADLINE} s, wanted {want}")
        await asyncio.sleep(0.2)


async def test_the_group_name_finds_the_entity_and_every_operation(group: Make) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready" and s.settled_generation == 1)
    await g.apply(new_image("v0.5.5"))
    s = await g.until("upgraded", lambda s: s.settled_generation == 2 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "upgrade"]
    deploy_id, upgrade_id = (op.workflow_id for op in s.recent)
    name = g.key.name

    await _until_listed(
        g.client,
        f'{RBG_NAME.name}="{name}"',
        [
            (g.key.workflow_id, "RoleBasedGroup", None, 2, CLUSTER),
            (deploy_id, "Deploy", "Deploy", 1, CLUSTER),
            (upgrade_id, "Upgrade", "Upgrade", 2, CLUSTER),
        ],
    )
    assert g.key.workflow_id == f"rbg.{CLUSTER}.wf.{name}"
    assert (
        deploy_id == f"rbg.{CLUSTER}.wf.{name}.deploy.1"
        and upgrade_id == f"rbg.{CLUSTER}.wf.{name}.upgrade.2"
    )

    # The saved views of the README: a group's upgrades, and the failed ones (none here).
    upgrade = (upgrade_id, "Upgrade", "Upgrade", 2, CLUSTER)
    await _until_listed(g.client, f'RbgOperation="Upgrade" AND RbgName="{name}"', [upgrade])
    await _until_listed(
        g.client,
        f'RbgCluster="{CLUSTER}" AND RbgName="{name}" AND RbgRevision=2',
        [(g.key.workflow_id, "RoleBasedGroup", None, 2, CLUSTER), upgrade],
    )
    failed = [
        wf.id
        async for wf in g.client.list_workflows(
            f'RbgOperation="Upgrade" AND ExecutionStatus="Failed" AND RbgName="{name}"'
        )
    ]
    assert failed == []


async def test_a_worker_of_another_cluster_refuses_the_group(group: Make, standins: StandIns) -> None:
    # Only a misconfigured worker (polling another cluster's task queue) meets this group.
    standins.timeouts = Timeouts(heartbeat_every_seconds=0.2, cluster="elsewhere")
    g = group()
    await g.apply()
    with pytest.raises(WorkflowFailureError) as info:
        await g.handle.result()
    cause: Any = info.value.cause
    assert cause.type == "WrongCluster"
    assert f"belongs to cluster '{CLUSTER}' but this worker acts on cluster 'elsewhere'" in cause.message
    assert (await g.handle.describe()).status == WorkflowExecutionStatus.FAILED
    # Nothing touched the cluster: the settings were read, and no operation started.
    assert standins.calls.names == ["settings"]


def _readme_views() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^  \| [^|]+ \| `([^`]+)` \|$", readme, re.M)
    assert len(rows) >= 5, "the README's saved-view table is gone"
    return rows


@pytest.mark.parametrize("query", _readme_views())
async def test_the_readmes_saved_views_are_valid_queries(env: WorkflowEnvironment, query: str) -> None:
    async for _ in env.client.list_workflows(query, limit=1):
        break  # parsed and answered; what it lists belongs to the other tests
