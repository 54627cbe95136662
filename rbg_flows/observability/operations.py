"""Operation metrics from the Events the `report` activity posts.

Workflows do no I/O, so the counters are recorded by the activity that already runs at each milestone:
`report` posts `<Kind>Started`, `<Kind>Succeeded` and `<Kind>Failed` (and `ProgressDeadlineExceeded`),
and records the metric once the Event is written. Chosen over `workflow.metric_meter()` (replay-safe,
and the workflow knows its start time): the Events are already the operations' public milestones, so the
metrics and `kubectl get events` cannot disagree, and the deterministic workflow code stays free of
metric code. The price is one Temporal call (describe) per finished operation to learn its start. A
report retried after its Event was written (the worker died before completing the activity) counts
twice; that is rare and errs towards visibility.
"""

from __future__ import annotations

import datetime
from typing import Literal

from rbg_flows.observability.metrics import (
    OPERATION_DURATION,
    OPERATIONS_FINISHED,
    OPERATIONS_STARTED,
    PROGRESS_DEADLINE_EXCEEDED,
)

KINDS = ("deploy", "upgrade", "scale", "repair", "rollback", "abort")
Phase = Literal["Started", "Succeeded", "Failed"]
PHASES: tuple[Phase, ...] = ("Started", "Succeeded", "Failed")
DEADLINE_REASON = "ProgressDeadlineExceeded"


def operation_event(reason: str) -> tuple[str, Phase] | None:
    """`DeployStarted` → ("deploy", "Started"); None for a reason that is no operation milestone."""
    for phase in PHASES:
        if reason.endswith(phase):
            kind = reason.removesuffix(phase).lower()
            if kind in KINDS:
                return kind, phase
    return None


def operation_kind(workflow_id: str) -> str | None:
    """The kind in an operation workflow's id (`rbg.<ns>.<name>.<kind>.<suffix>`); None for the entity."""
    parts = workflow_id.rsplit(".", 2)
    return parts[1] if len(parts) == 3 and parts[1] in KINDS else None


def record(
    reason: str,
    workflow_id: str,
    started: datetime.datetime | None,
    now: datetime.datetime | None = None,
) -> None:
    """Count the Event `reason` posted by `workflow_id`; `started` is when that workflow started (for the
    duration of a finished operation; None when it could not be learnt)."""
    if reason == DEADLINE_REASON:
        PROGRESS_DEADLINE_EXCEEDED.labels(kind=operation_kind(workflow_id) or "unknown").inc()
        return
    op = operation_event(reason)
    if op is None:
        return
    kind, phase = op
    if phase == "Started":
        OPERATIONS_STARTED.labels(kind=kind).inc()
        return
    outcome = "succeeded" if phase == "Succeeded" else "failed"
    OPERATIONS_FINISHED.labels(kind=kind, outcome=outcome).inc()
    if started is not None:
        elapsed = ((now or datetime.datetime.now(datetime.UTC)) - started).total_seconds()
        OPERATION_DURATION.labels(kind=kind, outcome=outcome).observe(max(0.0, elapsed))


async def record_from_activity(reason: str) -> None:
    """`record` for the running activity: the duration's start is the operation workflow's start time,
    asked of Temporal (so a worker restarted mid-operation still measures it whole)."""
    from temporalio import activity

    info = activity.info()
    workflow_id, run_id = info.workflow_id or "", info.workflow_run_id or ""
    op = operation_event(reason)
    started = None
    if op is not None and op[1] != "Started" and workflow_id:
        started = await _workflow_start(workflow_id, run_id)
    record(reason, workflow_id, started)


async def _workflow_start(workflow_id: str, run_id: str) -> datetime.datetime | None:
    import asyncio

    import structlog
    from temporalio import activity

    try:
        desc = await asyncio.wait_for(
            activity.client().get_workflow_handle(workflow_id, run_id=run_id).describe(), timeout=10
        )
    except Exception as e:
        # Metrics must never fail the status write they follow: the count is kept, the duration lost.
        structlog.get_logger(__name__).warning("operation start unknown", error=str(e) or repr(e))
        return None
    return desc.start_time
