"""What every operation workflow (Deploy, Upgrade) shares: status reports, the progress table the
Temporal UI shows, refusing an invalid spec, and applying one role and waiting for it to be ready."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities import interface as act
    from rbg_flows.messages import (
        AppliedWorkload,
        ConditionUpdate,
        DeployedRole,
        DeployResult,
        EventRecord,
        Gate,
        OperationInput,
        RoleDeploy,
        RolePlacement,
        RolePlan,
        RoleProgress,
        StatusUpdate,
        Timeouts,
        ValidationReport,
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
A = TypeVar("A")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), backoff_coefficient=2.0
)

# Operations give each activity a few attempts only: past them the workflow itself retries (Operation._call),
# so a transient error that lasts is written where users look instead of being retried out of sight.
ATTEMPTS = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_attempts=3,
)
# Between rounds of attempts. Capped so that a fault that lasts days stays well within a history's limits
# (about 6 events per round: at most ~1,700 a day) while a fault that clears is noticed within minutes.
ROUND_BACKOFF_FIRST_SECONDS = 2.0
ROUND_BACKOFF_MAX_SECONDS = 300.0
RETRY_MESSAGE_MAX = 1024
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def is_final(e: ActivityError) -> bool:
    """Retrying cannot cure it: the activity said so (the API server refused the object, the spec no longer
    validates), or the operation is being cancelled."""
    cause = e.cause
    return is_cancelled_exception(e) or (isinstance(cause, ApplicationError) and cause.non_retryable)


def error_text(e: ActivityError) -> str:
    """What went wrong, in the activity's words; a timeout also names the last failure behind it."""
    cause = e.cause
    if cause is None:
        return str(e)
    # `message`, not str(): str() of an ApplicationError prefixes its type (Kube500: ...).
    text = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    if isinstance(cause, TimeoutError):
        text = f"{cause.type.name.lower().replace('_', '-') if cause.type else 'timeout'}: {text}"
        if cause.cause is not None:
            text += f" (last error: {cause.cause})"
    return text


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
        "retry_policy": ATTEMPTS,
    }


def acting(t: Timeouts) -> dict[str, Any]:
    """Options of an activity that applies or writes something: short, heartbeating per API attempt."""
    return {
        "start_to_close_timeout": timedelta(seconds=t.apply_timeout_seconds),
        "heartbeat_timeout": timedelta(seconds=t.heartbeat_timeout_seconds),
        "retry_policy": ATTEMPTS,
    }


async def run_short(
    fn: Callable[[A], Awaitable[R]], arg: A, t: Timeouts, summary: str, retry: RetryPolicy = RETRY
) -> R:
    """Run a short activity (a validation, a status write) as a local activity: no task queue round
    trip, and it never heartbeats (nothing to heartbeat to)."""
    return await workflow.execute_local_activity(
        fn,
        arg,
        start_to_close_timeout=timedelta(seconds=t.apply_timeout_seconds),
        retry_policy=retry,
        summary=summary,
    )


class Operation:
    """Base of the operation workflows (not a workflow itself)."""

    def __init__(self) -> None:
        self._progress: dict[str, RoleProgress] = {}
        self._stage = "validating"
        # A status write reads, changes and applies the whole status: two at once (parallel roles both
        # past their deadline, a pause during the start report) would lose one's conditions.
        self._reporting = asyncio.Lock()
        # The last Progressing condition reported by the operation itself, put back once a retried call
        # succeeds (the Retrying condition it replaced is no longer true).
        self._progressing: ConditionUpdate | None = None
        self._retrying = 0
        # role -> what the scheduler says of its pods it cannot place, while it says so
        self._unschedulable: dict[str, str] = {}
        self._progressing_before_unschedulable: ConditionUpdate | None = None

    async def _call(
        self, inp: OperationInput, run: Callable[[], Awaitable[R]], summary: str, quiet: bool
    ) -> R:
        """Every activity call of an operation: a few attempts by Temporal, then, for an error retrying may
        cure, report it (once per distinct error) and call again after a growing pause, for as long as it
        takes. Errors retrying cannot cure, and cancellation, are raised to the operation.
        `quiet` is for the status write itself, which has nowhere to report its own failure."""
        rounds = 0
        shown: str | None = None
        while True:
            try:
                result = await run()
            except ActivityError as e:
                if is_final(e):
                    raise
                error = error_text(e)
                workflow.logger.warning("%s failed, retrying: %s", summary, error)
                # The same error with other figures ("failing for 31 s", "for 62 s") is not news: one
                # report and one Event for it, not one per round.
                kind = _DIGITS.sub("N", error)
                if not quiet and kind != shown:
                    if shown is None:
                        self._retrying += 1
                    shown = kind
                    await self._report_retrying(inp, summary, error)
                delay = min(ROUND_BACKOFF_MAX_SECONDS, ROUND_BACKOFF_FIRST_SECONDS * 2**rounds)
                rounds += 1
                await workflow.sleep(timedelta(seconds=delay))
                continue
            if shown is not None:
                self._retrying -= 1
                if self._retrying == 0 and self._progressing is not None:
                    await self._report_best_effort(inp, [self._progressing], None)
            return result

    async def _short(self, inp: OperationInput, fn: Callable[[A], Awaitable[R]], arg: A, summary: str) -> R:
        """A short local activity (see run_short) through _call."""
        return await self._call(
            inp, lambda: run_short(fn, arg, inp.timeouts, summary, ATTEMPTS), summary, quiet=False
        )

    async def _activity(
        self,
        inp: OperationInput,
        fn: Callable[[A], Awaitable[R]],
        arg: A,
        options: dict[str, Any],
        summary: str,
    ) -> R:
        """A normal activity with `options` (acting or waiting) through _call."""

        async def run() -> R:
            result: R = await workflow.execute_activity(fn, arg, **options, summary=summary)
            return result

        return await self._call(inp, run, summary, quiet=False)

    async def _report_retrying(self, inp: OperationInput, summary: str, error: str) -> None:
        message = f"{summary}: {error}; retrying"[:RETRY_MESSAGE_MAX]
        await self._report_best_effort(
            inp,
            [ConditionUpdate(type="Progressing", status="Unknown", reason="Retrying", message=message)],
            ("Retrying", message, True),
        )

    async def _report_best_effort(
        self, inp: OperationInput, conditions: list[ConditionUpdate], event: tuple[str, str, bool] | None
    ) -> None:
        """One round of attempts; a failure is logged, not retried: the same outage that is being reported
        may keep the status from being written, and the call being retried must not wait on its report."""
        try:
            await self._report(inp, conditions, event=event, best_effort=True)
        except ActivityError as e:
            if is_cancelled_exception(e):
                raise
            workflow.logger.warning("status report failed: %s", error_text(e))

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
        best_effort: bool = False,
        placement: dict[str, Any] | None = None,
    ) -> None:
        """Write status and post its Event in one activity (one round trip per milestone).
        `revisions` is (currentRevision, updateRevision) when they change."""
        if not best_effort:
            self._progressing = next((c for c in conditions if c.type == "Progressing"), self._progressing)
        reason, message, warning = event or ("", "", False)
        update = StatusUpdate(
            placement=placement,
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
            await self._report_now(inp, update, best_effort)

    async def _report_settled(
        self,
        inp: OperationInput,
        conditions: list[ConditionUpdate],
        event: tuple[str, str, bool],
        **fields: Any,
    ) -> None:
        """The report that ends an operation's work. Once it is under way the work is done, so a
        cancellation (a newer spec superseding the operation) waits for it and lets the operation return
        its result: cancelled here, the entity would never learn that the group was deployed, and would
        treat a change made the moment the group turned Ready as a first deploy instead of an upgrade."""
        writing = asyncio.ensure_future(self._report(inp, conditions, event=event, **fields))
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            await writing

    async def _report_now(self, inp: OperationInput, update: StatusUpdate, best_effort: bool = False) -> None:
        phase, reason = update.phase, update.event.reason if update.event else ""
        what = (f"status {phase}" if phase else "status", f"event {reason}" if reason else "")
        summary = " + ".join(x for x in what if x)
        if best_effort:
            await run_short(act.report, update, inp.timeouts, summary, ATTEMPTS)
            return
        await self._call(
            inp, lambda: run_short(act.report, update, inp.timeouts, summary, ATTEMPTS), summary, quiet=True
        )

    async def _prepare(self, inp: OperationInput) -> ValidationReport:
        return await self._short(
            inp,
            act.prepare,
            inp.event,
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

    async def _deploy_role(
        self,
        inp: OperationInput,
        plan: RolePlan,
        placement: RolePlacement | None = None,
        step: str | None = None,
        gate: Gate = "ready",
        replaced: list[str] | None = None,
    ) -> tuple[str, int]:
        """Apply a role's workload as built from the spec and wait until it is ready: one activity, and
        more only to report progress or a passed deadline (those only wait). A `step` of a coordinated
        scale applies `plan.replicas` instead of the spec's and waits for its `gate`."""
        t = inp.timeouts
        kind = plan.kind.rsplit("/", 1)[-1]  # "apps/v1/StatefulSet" -> "StatefulSet"
        applied: AppliedWorkload | None = None
        prefix = f"{step}: " if step else ""
        at = f" at {plan.replicas}" if step else ""

        async def once(known: int, remaining: float | None) -> RoleProgress:
            nonlocal applied
            waiting_for = (
                f"{plan.role} ready {max(known, 0)}/{plan.replicas}"
                if gate == "ready"
                else f"{plan.role} scheduled {plan.replicas}"
            )
            r: DeployedRole = await self._activity(
                inp,
                act.deploy_role,
                RoleDeploy(
                    ref=inp.ref,
                    plan=plan,
                    applied=applied,
                    placement=placement,
                    step=step is not None,
                    gate=gate,
                    replaced=replaced or [],
                    known_ready=known,
                    known_unschedulable=plan.role in self._unschedulable,
                    deadline_seconds=remaining,
                    heartbeat_every_seconds=t.heartbeat_every_seconds,
                ),
                waiting(t),
                f"{prefix}apply {plan.role} {kind}{at}, wait {waiting_for}"
                if applied is None
                else f"{prefix}wait {waiting_for}",
            )
            applied = r.applied
            self._progress[plan.role] = r.progress
            self._details()
            if bool(r.progress.unschedulable) != (plan.role in self._unschedulable):
                await self._unschedulable_changed(inp, plan.role, r.progress.unschedulable)
            return r.progress

        # Start from 0 ready: the first report comes with progress, not with an empty table.
        await self._wait_loop(inp, plan.role, plan.replicas, 0, once)
        assert applied is not None
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

    async def _unschedulable_changed(self, inp: OperationInput, role: str, message: str) -> None:
        """Pods of a role the scheduler cannot place (a size the cluster cannot hold) are said where
        people look, naming the role, as soon as the scheduler says so rather than at the deadline; the
        operation keeps waiting (capacity may free, or a smaller spec supersedes it). Once every role
        is placed again, the operation's own Progressing condition comes back."""
        if not self._unschedulable:
            self._progressing_before_unschedulable = self._progressing
        if message:
            self._unschedulable[role] = message
        else:
            self._unschedulable.pop(role, None)
        if self._unschedulable:
            text = "; ".join(self._unschedulable[r] for r in sorted(self._unschedulable))
            condition = ConditionUpdate(
                type="Progressing", status="True", reason="Unschedulable", message=text
            )
            await self._report(inp, [condition], event=("Unschedulable", message or text, True))
        elif self._progressing_before_unschedulable is not None:
            await self._report(inp, [self._progressing_before_unschedulable])

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
