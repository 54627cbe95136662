"""Billable actions counted from histories: two recorded ones (a cut of tests/replay/histories, counted by
hand) and a few made by hand for the rules the recorded ones do not exercise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench._actions import add, billable_actions, event_counts

# Cut from tests/replay/histories/{Deploy__...deploy.1,RoleBasedGroup__...pd-demo}.json as recorded in
# 383ea3f (types, ids and the attributes the count reads), so re-recording those files does not move
# these expectations.
RECORDED = json.loads((Path(__file__).parent / "bench_histories.json").read_text())


def recorded(name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = RECORDED[name]["events"]
    return events


def ev(n: int, kind: str, **attrs: Any) -> dict[str, Any]:
    return {"eventId": str(n), "eventType": f"EVENT_TYPE_{kind}", "someEventAttributes": attrs}


def test_a_recorded_deploy_counts_as_counted_by_hand() -> None:
    # Event 1 started; one workflow task (4) records three markers (5, 6, 8: one action) and upserts
    # RbgRevision (7); activities scheduled at 9, 10, 18, 19, 30, 36, each started once (attempt 1);
    # the last task (41) records one marker (42).
    assert billable_actions(recorded("Deploy__rbg.replay.default.pd-demo.deploy.1.json")) == {
        "start_workflow": 1,
        "markers": 2,
        "upsert_search_attributes": 1,
        "activity": 6,
        "total": 10,
    }


def test_a_recorded_entity_counts_its_signal_with_start_once() -> None:
    # 1 started + 2 spec_changed: signal-with-start, one action; signals 13, 15, 18, 28, 39, 49, 60;
    # markers in tasks 5, 31, 52; upserts 7, 26, 27, 33, 47, 48, 54, 68, 69; children at 8, 34, 55.
    events = recorded("RoleBasedGroup__rbg.replay.default.pd-demo.json")
    assert billable_actions(events) == {
        "signal_with_start": 1,
        "signal": 7,
        "markers": 3,
        "upsert_search_attributes": 9,
        "start_child_workflow": 3,
        "total": 23,
    }
    counts = event_counts(events)
    assert sum(counts.values()) == 69
    assert counts["WORKFLOW_TASK_COMPLETED"] == 13


def test_retries_timers_updates_and_version_markers() -> None:
    events = [
        ev(1, "WORKFLOW_EXECUTION_STARTED"),
        ev(2, "WORKFLOW_TASK_SCHEDULED"),
        ev(3, "WORKFLOW_TASK_STARTED"),
        ev(4, "WORKFLOW_TASK_COMPLETED", meteringMetadata={"nonfirstLocalActivityExecutionAttempts": 2}),
        ev(5, "MARKER_RECORDED", markerName="core_patch", workflowTaskCompletedEventId="4"),
        ev(
            6,
            "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
            searchAttributes={"indexedFields": {"TemporalChangeVersion": {}}},
        ),
        ev(7, "ACTIVITY_TASK_SCHEDULED"),
        ev(8, "TIMER_STARTED"),
        ev(9, "ACTIVITY_TASK_STARTED", attempt=3),
        ev(10, "ACTIVITY_TASK_COMPLETED"),
        ev(11, "WORKFLOW_EXECUTION_SIGNALED"),  # an ordinary signal: not event 2
        ev(12, "WORKFLOW_EXECUTION_UPDATE_ACCEPTED"),
        ev(13, "WORKFLOW_TASK_COMPLETED"),
        ev(14, "MARKER_RECORDED", workflowTaskCompletedEventId="13"),
        ev(15, "MARKER_RECORDED", workflowTaskCompletedEventId="13"),
        ev(16, "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"),  # counted where it is received
        ev(17, "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"),  # counted as the new run's start
    ]
    assert billable_actions(events) == {
        "start_workflow": 1,
        "local_activity_retry": 2,
        "markers": 2,
        "activity": 1,
        "activity_retry": 2,
        "timer": 1,
        "signal": 1,
        "update": 1,
        "total": 11,
    }


def test_sums_add_up() -> None:
    a, b = {"signal": 1, "total": 1}, {"signal": 2, "timer": 1, "total": 3}
    assert add([a, b]) == {"signal": 3, "timer": 1, "total": 4}
