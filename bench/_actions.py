"""Temporal Cloud billable actions counted from workflow histories (the events of one run, as
`WorkflowHistory.to_json_dict()["events"]` gives them and tests/replay/histories stores them). Pure.

The rules are those of docs.temporal.io/cloud/actions, applied one history at a time so that summing the
histories of a parent and its children counts each action once:

- a run's WorkflowExecutionStarted is one action (a client start, a continue-as-new, a child's start),
  except after signal-with-start: the start and its signal (event 2) are one action together;
- every WorkflowExecutionSignaled is one (a signal sent by another workflow counts here, in the signaled
  history, not at the sender's SignalExternalWorkflowExecutionInitiated);
- every accepted update is one (a rejected update is never written to the history: not counted here);
- every activity scheduled is one, and every retry one more (ActivityTaskStarted.attempt - 1);
- the markers recorded by one workflow task (local activities, patches) are one action together, and each
  local-activity attempt after the first (WorkflowTaskCompleted.meteringMetadata) one more;
- every timer started, every search-attribute upsert (except one setting only TemporalChangeVersion),
  every workflow-options update, every Nexus operation scheduled or cancel requested is one;
- StartChildWorkflowExecutionInitiated is one (the intent; the child's own start is counted in its
  history: two in all, as the page says);
- WorkflowExecutionContinuedAsNew is none (the new run's start is counted in the new run's history).

Not in any history, so not counted: activity heartbeats and workflow-task heartbeats that reach the
server, queries, rejected updates, de-duplicated starts; nor cancellations of other workflows, which the
page does not list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

Event = Mapping[str, Any]

PREFIX = "EVENT_TYPE_"
# One action per event of these types.
ONE_EACH = {
    "WORKFLOW_EXECUTION_SIGNALED": "signal",
    "WORKFLOW_EXECUTION_UPDATE_ACCEPTED": "update",
    "ACTIVITY_TASK_SCHEDULED": "activity",
    "TIMER_STARTED": "timer",
    "START_CHILD_WORKFLOW_EXECUTION_INITIATED": "start_child_workflow",
    "WORKFLOW_EXECUTION_OPTIONS_UPDATED": "workflow_options_updated",
    "NEXUS_OPERATION_SCHEDULED": "nexus_operation",
    "NEXUS_OPERATION_CANCEL_REQUESTED": "nexus_operation",
}
VERSION_ATTRIBUTE = "TemporalChangeVersion"


def event_type(event: Event) -> str:
    """The short type name: WORKFLOW_EXECUTION_STARTED for EVENT_TYPE_WORKFLOW_EXECUTION_STARTED."""
    name = str(event.get("eventType", ""))
    return name.removeprefix(PREFIX)


def _attributes(event: Event) -> Mapping[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventAttributes") and isinstance(v, dict)), {})


def event_counts(events: Iterable[Event]) -> dict[str, int]:
    """History events by type."""
    return dict(sorted(Counter(event_type(e) for e in events).items()))


def billable_actions(events: Iterable[Event]) -> dict[str, int]:
    """Billable actions of one history by kind, and their `total`."""
    out: Counter[str] = Counter()
    marker_tasks: set[str] = set()
    for index, event in enumerate(events):
        kind, attrs = event_type(event), _attributes(event)
        if kind == "WORKFLOW_EXECUTION_STARTED":
            out["start_workflow"] += 1
        elif kind == "WORKFLOW_EXECUTION_SIGNALED" and index == 1 and out["start_workflow"] == 1:
            # Signal-with-start: one action for the start and its signal together.
            out["start_workflow"] -= 1
            out["signal_with_start"] += 1
        elif kind in ONE_EACH:
            out[ONE_EACH[kind]] += 1
        elif kind == "ACTIVITY_TASK_STARTED":
            out["activity_retry"] += max(0, int(attrs.get("attempt", 1)) - 1)
        elif kind == "MARKER_RECORDED":
            marker_tasks.add(str(attrs.get("workflowTaskCompletedEventId", event.get("eventId"))))
        elif kind == "WORKFLOW_TASK_COMPLETED":
            metering = attrs.get("meteringMetadata") or {}
            out["local_activity_retry"] += int(metering.get("nonfirstLocalActivityExecutionAttempts", 0))
        elif kind == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
            fields = (attrs.get("searchAttributes") or {}).get("indexedFields") or {}
            if set(fields) != {VERSION_ATTRIBUTE}:
                out["upsert_search_attributes"] += 1
    out["markers"] = len(marker_tasks)
    counted = {k: v for k, v in sorted(out.items()) if v}
    counted["total"] = sum(counted.values())
    return counted


def add(totals: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The sum of several `billable_actions` or `event_counts` results."""
    out: Counter[str] = Counter()
    for t in totals:
        out.update(t)
    return dict(sorted(out.items()))
