"""The entity workflow and its operations, with stand-in activities: no cluster needed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from rbg_flows.messages import NAMING_SCHEME, RBG_UID, Timeouts
from rbg_flows.worker import WORKFLOWS, sandbox_runner

from .conftest import Group, new_image
from .standins import StandIns

Make = Callable[..., Group]


def _replicas(role: str, n: int) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        next(r for r in spec["roles"] if r["name"] == role)["replicas"] = n

    return change


async def _refusal(g: Group, update: str, *args: Any) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await g.handle.execute_update(update, *args, result_type=str)
    return str(info.value.cause.message if hasattr(info.value.cause, "message") else info.value.cause)


async def test_first_spec_deploys_roles_in_dependency_order(group: Make, standins: StandIns) -> None:
    g = group()
    await g.apply()
    s = await g.until("Ready", lambda s: s.phase == "Ready" and s.settled_generation == 1)
    assert s.deployed and s.current_revision is not None and s.current_revision.revision == 1
    assert s.naming == NAMING_SCHEME  # made under today's names: nothing to move later
    # The router depends on prefill and decode: applied only after both.
    assert standins.calls.applied.index("router") > max(
        standins.calls.applied.index("prefill"), standins.calls.applied.index("decode")
    )
    assert standins.calls.events() == ["DeployStarted", "DeploySucceeded"]
    assert ("True", "AllRolesReady") in standins.calls.conditions("Ready")


async def test_a_repeated_generation_is_ignored(group: Make, standins: StandIns) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    await g.apply()  # the watcher re-sends the same generation (a resync, a restart)
    await g.apply(_replicas("decode", 3))
    s = await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "scale"]


async def test_a_group_deployed_under_older_names_is_moved_once_newer_code_hears_of_it(
    group: Make, standins: StandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rbg_flows.watcher.signaller as signaller

    current = signaller.spec_event
    # A watcher of a version before the naming scheme: its events announce none (as in old histories).
    monkeypatch.setattr(signaller, "spec_event", lambda body: current(body).model_copy(update={"naming": 0}))
    g = group()
    await g.apply()
    s = await g.until("Ready", lambda s: s.phase == "Ready" and s.current is None)
    assert s.naming == 0 and [op.kind for op in s.recent] == ["deploy"]
    # Today's watcher re-sends the same generation when it starts (its first list): the group is moved.
    monkeypatch.setattr(signaller, "spec_event", current)
    await g.apply()
    s = await g.until("moved", lambda s: len(s.recent) == 2 and s.current is None)
    assert [(op.kind, op.outcome) for op in s.recent] == [("deploy", "ready"), ("migrate", "ready")]
    assert s.naming == s.naming_seen == NAMING_SCHEME and s.phase == "Ready"
    assert standins.calls.events()[-2:] == ["MigrateStarted", "MigrateSucceeded"]
    # Once: hearing of the scheme again changes nothing, the next change is an ordinary one.
    await g.apply()
    await g.apply(_replicas("decode", 3))
    s = await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "migrate", "scale"]


async def test_a_newer_spec_supersedes_the_running_operation(group: Make, standins: StandIns) -> None:
    gate = standins.hold("prefill")
    g = group()
    await g.apply()
    await g.until(
        "waiting on prefill", lambda s: s.current is not None and "wait_role" in standins.calls.names
    )
    await g.apply(_replicas("decode", 3))
    await g.until("the newer operation", lambda s: s.current is not None and s.current.generation == 2)
    gate.set()
    s = await g.until("Ready at 2", lambda s: s.settled_generation == 2 and s.phase == "Ready")
    assert [(op.generation, op.outcome) for op in s.recent] == [(1, "superseded"), (2, "ready")]
    assert s.applied is not None and s.applied.replicas["decode"] == 3


async def test_a_change_made_as_the_deploy_writes_ready_is_rolled_as_an_upgrade(
    group: Make, standins: StandIns, env: WorkflowEnvironment
) -> None:
    gate = standins.hold_report("DeploySucceeded")
    g = group()
    await g.apply()
    await g.until("writing Ready", lambda s: "DeploySucceeded" in standins.reporting)
    await g.apply(new_image("v0.5.5"))
    deploy = env.client.get_workflow_handle(g.key.operation_id("deploy", 1))

    for _ in range(300):  # the entity asks the superseded deploy to cancel
        events = [e.event_type async for e in deploy.fetch_history_events()]
        if EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in events:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the deploy was never asked to cancel")
    gate.set()
    s = await g.until("upgraded", lambda s: s.settled_generation == 2 and s.phase == "Ready")
    # The deploy had finished its work: it completes, and the change that followed is an upgrade.
    assert [(op.kind, op.generation, op.outcome) for op in s.recent] == [
        ("deploy", 1, "ready"),
        ("upgrade", 2, "ready"),
    ]


async def test_controls_are_refused_with_the_reason(group: Make) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    assert await _refusal(g, "abort") == "no upgrade is in progress"
    assert await _refusal(g, "rollback", 9) == "revision 9 not found (known revisions: 1)"
    assert await _refusal(g, "rollback", 1) == "revision 1 is already the current revision"
    assert await _refusal(g, "resume") == "the rollout is not paused"
    answer = await g.handle.execute_update("pause", result_type=str)
    assert answer == "paused: the next rollout holds before its first step"
    assert await _refusal(g, "pause") == "the rollout is already paused"
    await g.until("Paused", lambda s: s.phase == "Paused" and s.paused_reported)
    assert await g.handle.execute_update("resume", result_type=str) == "resumed"
    await g.until("back to Ready", lambda s: s.phase == "Ready" and not s.paused_reported)


async def test_a_signal_control_that_is_refused_leaves_the_workflow_running(group: Make) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    await g.handle.signal("request_abort")  # nothing to abort: logged, not a failure
    await g.handle.signal("request_pause")
    s = await g.until("Paused", lambda s: s.phase == "Paused")
    assert s.paused
    assert (await g.handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_rollback_mid_upgrade_is_answered_and_rolls_back(group: Make, standins: StandIns) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    await g.handle.execute_update("pause", result_type=str)
    await g.apply(new_image("v0.5.5"))
    # Paused before its first step: the upgrade holds every pod where it is.
    await g.until("upgrade held", lambda s: s.current is not None and s.current.kind == "upgrade")
    await g.until("paused report", lambda s: "RolloutPaused" in standins.calls.events())
    answer = await g.handle.execute_update("rollback", 1, result_type=str)
    assert answer == "rollback: rolling back to revision 1 as generation 3"
    s = await g.until("rolled back", lambda s: s.settled_generation == 3 and s.phase == "Ready")
    assert s.current_revision is not None and s.current_revision.revision == 1
    assert not s.paused  # a rollback clears the pause
    assert [(op.kind, op.generation, op.outcome) for op in s.recent][-2:] == [
        ("upgrade", 2, "superseded"),
        ("upgrade", 3, "ready"),
    ]
    assert "RollbackRequested" in standins.calls.events()
    assert "RollbackSucceeded" in standins.calls.events()


async def test_deletion_ends_the_entity_and_a_stale_uid_does_not(group: Make) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    await g.signaller.deleted(g.key.namespace, g.key.name, str(uuid.uuid4()))  # an older namesake
    await g.apply(_replicas("decode", 3))  # still served: the stale deletion was ignored
    await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    await g.signaller.deleted(g.key.namespace, g.key.name, g.obj["metadata"]["uid"])
    assert await g.handle.result() is None
    assert (await g.handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_the_ready_deadline_is_reported_once_and_the_wait_goes_on(
    group: Make, standins: StandIns
) -> None:
    standins.past_deadline.add("prefill")
    gate = standins.hold("prefill")
    g = group()
    await g.apply()
    await g.until(
        "deadline reported",
        lambda s: ("False", "ProgressDeadlineExceeded") in standins.calls.conditions("Progressing"),
    )
    assert (await g.state()).phase == "Deploying"  # still managed, still waiting
    gate.set()
    await g.until("Ready", lambda s: s.phase == "Ready")
    assert standins.calls.events().count("ProgressDeadlineExceeded") == 1


async def test_settings_are_read_when_each_operation_starts(group: Make, standins: StandIns) -> None:
    standins.timeouts = Timeouts(ready_deadline_seconds=100, heartbeat_every_seconds=0.2)
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    # The operator changes the worker's setting: the next operation of this existing group uses it.
    standins.timeouts = Timeouts(ready_deadline_seconds=200, heartbeat_every_seconds=0.2)
    await g.apply(_replicas("decode", 3))
    s = await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    ops = [g.client.get_workflow_handle(op.workflow_id) for op in s.recent]
    deadlines = []
    for handle in ops:
        history = await handle.fetch_history()
        start = history.events[0].workflow_execution_started_event_attributes
        payload = pydantic_data_converter.payload_converter.from_payloads(start.input.payloads)[0]
        deadlines.append(payload["timeouts"]["ready_deadline_seconds"])
    assert deadlines == [100, 200]


async def test_continue_as_new_keeps_the_state(env: WorkflowEnvironment) -> None:
    standins = StandIns()
    task_queue = f"can-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=list(standins.activities()),
        workflow_runner=sandbox_runner(),
    ):
        g = Group(env.client, task_queue, standins, "pd-disaggregation.yaml")
        await g.apply()
        await g.until("Ready", lambda s: s.phase == "Ready")
        first_run = (await g.handle.describe()).run_id
        for n in range(3, 7):
            await g.apply(_replicas("decode", n))
            await g.until(f"scaled to {n}", lambda s: s.current is None and s.applied is not None)
        s = await g.until("all settled", lambda s: s.settled_generation == 5 and s.current is None)
        assert (await g.handle.describe()).run_id != first_run  # it continued as new on the way
        assert s.applied is not None and s.applied.replicas["decode"] == 6
        assert s.current_revision is not None and s.current_revision.revision == 1
        assert len(s.recent) == 5
        # The continued run still serves changes and controls.
        await g.apply(new_image("v0.5.5"))
        s = await g.until("upgraded", lambda s: s.settled_generation == 6 and s.current is None)
        assert s.current_revision is not None and s.current_revision.revision == 2


async def test_a_group_created_again_under_its_name_starts_over_with_its_uid(group: Make) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    old_uid = g.obj["metadata"]["uid"]
    g.obj["metadata"].update(uid=str(uuid.uuid4()), generation=1)  # deleted and created again
    await g.apply()
    s = await g.until("the new group Ready", lambda s: s.uid != old_uid and s.phase == "Ready")
    assert s.uid == g.obj["metadata"]["uid"] and s.settled_generation == 1
    # The watcher's resync finds entities by RbgUid: it must name the group now served.
    attrs = (await g.handle.describe()).typed_search_attributes
    assert attrs.get(RBG_UID) == g.obj["metadata"]["uid"]


async def test_a_lasting_transient_error_is_reported_and_retried_until_it_clears(
    group: Make, standins: StandIns
) -> None:
    # Four failures: the first round of three attempts fails, the workflow reports and goes on.
    standins.failures["apply_role/prefill"] = ["503 ServiceUnavailable: etcd leader changed"] * 4
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready", timeout=60)
    retrying = [c.message for u in standins.calls.reports for c in u.conditions if c.reason == "Retrying"]
    assert len(retrying) == 1 and "etcd leader changed; retrying" in retrying[0]
    assert standins.calls.events().count("Retrying") == 1
    # Once the step went through, the Progressing condition the operation had set is back.
    progressing = standins.calls.conditions("Progressing")
    assert progressing[progressing.index(("Unknown", "Retrying")) + 1] == ("True", "Deploying")
