"""What every operation workflow (Deploy, Upgrade) shares: status reports, the progress table the
Temporal UI shows, refusing an invalid spec, and applying one role and waiting for it to be ready."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities.group import GroupActivities
    from rbg_flows.activities.workloads import KINDS
    from rbg_flows.workflows.types import (
        ConditionUpdate,
        DeployResult,
        EventRecord,
        OperationInput,
        RolePlan,
        RoleProgress,
        RoleRequest,
        StatusUpdate,
        Timeouts,
        ValidationReport,
        WaitRequest,
    )


class Waited(Protocol):
    """What a wait activity reports: done, past its deadline, and how many are ready."""

    @property
    def done(self) -> bool: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def ready(self) -> int: ...


W = TypeVar("W", bound=Waited)
R = TypeVar("R")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), backoff_coefficient=2.0
)


def settled_conditions(generation: int) -> list[ConditionUpdate]:
    """Every declared condition, as it stands once an operation has settled with all roles ready."""
    done = f"generation {generation} is deployed"
    return [
        ConditionUpdate(type="Ready", status="True", reason="AllRolesReady", message="all roles are ready"),
        ConditionUpdate(type="Progressing", status="False", reason="Settled", message=done),
        ConditionUpdate(type="RollingUpdateInProgress", status="False", reason="NoRollingUpdate"),
        ConditionUpdate(type="RestartInProgress", status="False", reason="NoRestart"),
        ConditionUpdate(type="Paused", status="False", reason="NotPaused"),
        ConditionUpdate(type="InvalidSpec", status="False", reason="Valid"),
    ]


def waiting(t: Timeouts) -> dict[str, Any]:
    """Options of a wait activity: it may run as long as the ready deadline (and beyond: it keeps waiting
    after reporting the deadline), and heartbeats, so a dead worker is noticed within the timeout."""
    return {
        "start_to_close_timeout": timedelta(seconds=t.ready_deadline_seconds + 24 * 3600),
        "heartbeat_timeout": timedelta(seconds=t.heartbeat_timeout_seconds),
        "retry_policy": RETRY,
    }


def acting(t: Timeouts) -> dict[str, Any]:
    """Options of an activity that applies or writes something: short, heartbeating per API attempt."""
    return {
        "start_to_close_timeout": timedelta(seconds=t.apply_timeout_seconds),
        "heartbeat_timeout": timedelta(seconds=t.heartbeat_timeout_seconds),
        "retry_policy": RETRY,
    }


async def run_short(
    fn: Callable[..., Awaitable[R]], arg: Any, t: Timeouts, summary: str, *, local: bool
) -> R:
    """Run a short activity (an apply, a status write): as a local activity, which skips the task
    queue's round trip, or through the task queue as histories recorded before that expect."""
    if local:
        result: R = await workflow.execute_local_activity_method(
            fn,
            arg,
            start_to_close_timeout=timedelta(seconds=t.apply_timeout_seconds),
            retry_policy=RETRY,
            summary=summary,
        )
        return result
    remote: R = await workflow.execute_activity_method(fn, arg, **acting(t), summary=summary)
    return remote


class Operation:
    """Base of the operation workflows (not a workflow itself)."""

    def __init__(self) -> None:
        self._progress: dict[str, RoleProgress] = {}
        self._stage = "validating"
        # A status write reads, changes and applies the whole status: two at once (parallel roles both
        # past their deadline, a pause during the start report) would lose one's conditions.
        self._reporting = asyncio.Lock()
        # Short steps (validate, record, report, set a partition) as local activities: no matching-service
        # round trip each. Set by an operation from its workflow.patched check.
        self._local = False

    def _details(self) -> None:
        rows = ["| role | ready | updated | state |", "|---|---|---|---|"]
        for p in self._progress.values():
            state = "ready" if p.done else ("deadline exceeded" if p.timed_out else "waiting")
            rows.append(f"| {p.role} | {p.ready}/{p.replicas} | {p.updated}/{p.replicas} | {state} |")
        workflow.set_current_details(f"**{self._stage}**\n\n" + "\n".join(rows))

    async def _report(
        self,
        inp: OperationInput,
        conditions: list[ConditionUpdate],
        event: tuple[str, str, bool] | None = None,
        phase: str | None = None,
        observed_generation: int | None = None,
        revisions: tuple[str | None, str | None] = (None, None),
    ) -> None:
        """Write status and post its Event in one activity (one round trip per milestone).
        `revisions` is (currentRevision, updateRevision) when they change."""
        reason, message, warning = event or ("", "", False)
        update = StatusUpdate(
            current_revision=revisions[0],
            update_revision=revisions[1],
            key=inp.key,
            uid=inp.event.uid,
            workflow_id=inp.workflow_id,
            phase=phase,
            observed_generation=observed_generation,
            conditions=conditions,
            event=EventRecord(
                key=inp.key,
                uid=inp.event.uid,
                reason=reason,
                message=message,
                type="Warning" if warning else "Normal",
            )
            if event
            else None,
        )
        async with self._reporting:
            await self._report_now(inp, update)

    async def _report_now(self, inp: OperationInput, update: StatusUpdate) -> None:
        phase, reason = update.phase, update.event.reason if update.event else ""
        what = (f"status {phase}" if phase else "status", f"event {reason}" if reason else "")
        await self._short(GroupActivities.report, update, inp.timeouts, " + ".join(x for x in what if x))

    async def _short(self, fn: Callable[..., Awaitable[R]], arg: Any, t: Timeouts, summary: str) -> R:
        return await run_short(fn, arg, t, summary, local=self._local)

    async def _prepare(self, inp: OperationInput) -> ValidationReport:
        return await self._short(
            GroupActivities.prepare,
            inp.event,
            inp.timeouts,
            f"validate generation {inp.event.generation}, apply discovery ConfigMap",
        )

    async def _refuse(
        self, inp: OperationInput, report: ValidationReport, deployed_before: bool
    ) -> DeployResult:
        gen = inp.event.generation
        self._stage = "invalid spec: " + report.message
        self._details()
        # The previous workloads (if any) keep running: only the new spec is refused.
        phase = "Degraded" if deployed_before else "Failed"
        not_ready = (
            []
            if deployed_before
            else [
                ConditionUpdate(
                    type="Ready", status="False", reason="RoleNotReady", message="spec is invalid"
                )
            ]
        )
        await self._report(
            inp,
            [
                ConditionUpdate(
                    type="InvalidSpec", status="True", reason="InvalidSpec", message=report.message
                ),
                ConditionUpdate(
                    type="Progressing", status="False", reason="InvalidSpec", message=report.message
                ),
                *not_ready,
            ],
            event=("InvalidSpec", report.message, True),
            phase=phase,
            observed_generation=gen,
        )
        return DeployResult(generation=gen, outcome="invalid", phase=phase, message=report.message)

    async def _fail(self, inp: OperationInput, verb: str, message: str, event_reason: str) -> DeployResult:
        """A non-retryable failure (the API server refused an object): say so where users look, and
        settle this generation; the next spec change tries again."""
        gen = inp.event.generation
        self._stage = f"{verb} of generation {gen} failed: {message}"
        self._details()
        await self._report(
            inp,
            [ConditionUpdate(type="Progressing", status="False", reason="OperationFailed", message=message)],
            event=(event_reason, message, True),
            phase="Failed",
            observed_generation=gen,
        )
        return DeployResult(generation=gen, outcome="failed", phase="Failed", message=message)

    async def _deploy_role(self, inp: OperationInput, plan: RolePlan) -> tuple[str, int]:
        """Apply a role's workload as built from the spec and wait until it is ready."""
        t = inp.timeouts
        kind = KINDS[plan.kind].label
        applied = await workflow.execute_activity_method(
            GroupActivities.apply_role,
            RoleRequest(key=inp.key, event=inp.event, role=plan.role),
            **acting(t),
            summary=f"apply {plan.role} {kind}",
        )

        async def once(known: int, remaining: float | None) -> RoleProgress:
            p: RoleProgress = await workflow.execute_activity_method(
                GroupActivities.wait_role,
                WaitRequest(
                    key=inp.key,
                    uid=inp.event.uid,
                    plan=plan,
                    min_generation=applied.generation,
                    known_ready=known,
                    deadline_seconds=remaining,
                    heartbeat_every_seconds=t.heartbeat_every_seconds,
                ),
                **waiting(t),
                summary=f"wait {plan.role} ready {max(known, 0)}/{plan.replicas}",
            )
            self._progress[plan.role] = p
            self._details()
            return p

        # Start from 0 ready: the first report comes with progress, not with an empty table.
        await self._wait_loop(inp, plan.role, plan.replicas, 0, once)
        return applied.workload, applied.generation

    async def _wait_loop(
        self,
        inp: OperationInput,
        role: str,
        want: int,
        known: int,
        once: Callable[[int, float | None], Awaitable[W]],
    ) -> W:
        """Call a wait activity (`once(known ready, seconds left)`) until it reports done. Past the ready
        deadline, say so once and keep waiting: the group stays managed, only the condition says so."""
        deadline = workflow.now().timestamp() + inp.timeouts.ready_deadline_seconds
        reported = False
        while True:
            remaining = None if reported else max(0.0, deadline - workflow.now().timestamp())
            result = await once(known, remaining)
            if result.done:
                return result
            known = result.ready
            if result.timed_out and not reported:
                reported = True
                await self._deadline_exceeded(inp, role, result.ready, want)

    async def _deadline_exceeded(self, inp: OperationInput, role: str, ready: int, replicas: int) -> None:
        within = f"{inp.timeouts.ready_deadline_seconds:.0f}s"
        msg = f"role {role} not ready within {within} ({ready}/{replicas} ready)"
        await self._report(
            inp,
            [
                ConditionUpdate(
                    type="Progressing", status="False", reason="ProgressDeadlineExceeded", message=msg
                )
            ],
            event=("ProgressDeadlineExceeded", msg, True),
        )
