"""The RoleBasedGroupSet workflow: one per set (`rbgs.<cluster>.<namespace>.<name>`).

It keeps the set's RoleBasedGroups `<set>-0 … <set>-(N-1)` as the spec says: scaling creates and
deletes them (the highest indices go first), a template change is applied to one group at a time, each
waited for until it is Ready again before the next, so the set keeps serving through it. Each group is
then an ordinary RoleBasedGroup with its own entity workflow; this one never touches their workloads.

The watcher signals a new generation of the set (`spec_changed`) and a change of one of its groups'
readiness (`child_changed`): both only mark the set for a reconcile, which reads everything afresh
(the set, its groups), so a lost or repeated signal costs nothing, and a resync timer covers a watcher
that was away. A newer generation arriving mid-rollout interrupts the wait: the next reconcile rolls
straight to the newest template (the groups already on it are not touched again).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities import interface as act
    from rbg_flows.messages import (
        SET_WORKFLOW,
        ConditionUpdate,
        EventRecord,
        SetChild,
        SetChildUpdate,
        SetChildWait,
        SetInput,
        SetRef,
        SetSignal,
        SetState,
        SetStatusUpdate,
        SetView,
        Timeouts,
    )
    from rbg_flows.workflows.operation import RETRY, acting, waiting

# A reconcile without any signal: what a watcher that was away missed is caught up within this.
RESYNC = timedelta(minutes=5)
# How long a change of one group's readiness waits for the others of its burst before the set reconciles.
CHILD_DEBOUNCE = timedelta(seconds=2)
# Not-ready groups a condition message names (the rest are counted).
NAMED = 3


def conditions(view: SetView) -> list[ConditionUpdate]:
    """The set's Ready and InvalidSpec conditions for what a sync found."""
    if view.invalid:
        return [
            ConditionUpdate(type="Ready", status="False", reason="InvalidSpec", message=view.invalid),
            ConditionUpdate(type="InvalidSpec", status="True", reason="InvalidSpec", message=view.invalid),
        ]
    valid = ConditionUpdate(type="InvalidSpec", status="False", reason="Valid")
    if view.conflicts:
        message = f"RoleBasedGroups not of the set hold its names: {', '.join(view.conflicts[:NAMED])}"
        return [ConditionUpdate(type="Ready", status="False", reason="NameConflict", message=message), valid]
    ready = sum(c.ready for c in view.children)
    stale = [c for c in view.children if not c.current]
    if stale:
        message = f"{len(view.children) - len(stale)}/{len(view.children)} RoleBasedGroups updated"
        return [ConditionUpdate(type="Ready", status="False", reason="RollingUpdate", message=message), valid]
    waiting_for = [c for c in view.children if not c.ready]
    if waiting_for or len(view.children) != view.replicas:
        named = "; ".join(f"{c.name}: {c.message or 'not ready'}" for c in waiting_for[:NAMED])
        more = f" and {len(waiting_for) - NAMED} more" if len(waiting_for) > NAMED else ""
        message = f"{ready}/{view.replicas} RoleBasedGroups ready" + (f" ({named}{more})" if named else "")
        return [
            ConditionUpdate(type="Ready", status="False", reason="GroupsNotReady", message=message),
            valid,
        ]
    message = f"{ready}/{view.replicas} RoleBasedGroups ready"
    return [ConditionUpdate(type="Ready", status="True", reason="AllGroupsReady", message=message), valid]


@workflow.defn(name=SET_WORKFLOW)
class RoleBasedGroupSetWorkflow:
    @workflow.init
    def __init__(self, inp: SetInput) -> None:
        self.key = inp.key
        self.state = inp.state or SetState()
        self._timeouts = Timeouts()

    # -- messages from the watcher ---------------------------------------------------------------
    @workflow.signal
    def spec_changed(self, sig: SetSignal) -> None:
        s = self.state
        if s.uid and sig.uid != s.uid:
            # Deleted and created again under the same name: a new set, nothing of the old one carries.
            self.state = SetState(uid=sig.uid, generation=sig.generation)
            return
        s.uid = sig.uid
        s.generation = max(s.generation, sig.generation)
        s.dirty = True

    @workflow.signal
    def child_changed(self, sig: SetSignal) -> None:
        if sig.uid == self.state.uid:
            self.state.dirty = True

    @workflow.signal
    def deleted(self, uid: str) -> None:
        if uid == self.state.uid:
            self.state.deleted = True

    # -- the loop -------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: SetInput) -> None:
        await self._settings()
        while True:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        self.state.dirty
                        or self.state.deleted
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=RESYNC,
                )
            if self.state.deleted:
                return
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(SetInput(key=self.key, state=self.state))
            if self.state.dirty and self.state.generation == self.state.reconciled:
                # Only its groups changed (their readiness): the rest of a burst (a scale's new groups
                # turning Ready one by one) comes within moments, and one reconcile answers them all.
                await workflow.sleep(CHILD_DEBOUNCE)
            self.state.dirty = False
            if self.state.uid:
                generation = self.state.generation
                await self._reconcile(SetRef(key=self.key, uid=self.state.uid))
                self.state.reconciled = generation

    async def _settings(self) -> None:
        self._timeouts = await workflow.execute_local_activity(
            act.settings, start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY, summary="settings"
        )
        mine, theirs = self._timeouts.cluster, self.key.cluster
        if mine and theirs and mine != theirs:
            raise ApplicationError(
                f"RoleBasedGroupSet {self.key.namespace}/{self.key.name} belongs to cluster {theirs!r}, "
                f"this worker to {mine!r}",
                non_retryable=True,
            )

    def _interrupted(self, generation: int) -> bool:
        return self.state.deleted or self.state.generation > generation

    async def _reconcile(self, ref: SetRef) -> None:
        view = await self._sync(ref)
        if view is None:
            return
        stale = [c for c in view.children if not c.current]
        for n, child in enumerate(stale, 1):
            if self._interrupted(view.generation):
                return
            if workflow.info().is_continue_as_new_suggested():
                # A long rollout (hundreds of groups): the run continues as new and the next reconcile goes
                # on from the first group not yet built from the template.
                self.state.dirty = True
                return
            progress = f"{n}/{len(stale)}"
            updated = await workflow.execute_activity(
                act.update_set_child,
                SetChildUpdate(key=ref.key, uid=ref.uid, index=child.index),
                summary=f"update {child.name} to generation {view.generation} ({progress})",
                **acting(self._timeouts),
            )
            await self._report(
                ref,
                view,
                event=EventRecord(
                    key=ref.key,
                    uid=ref.uid,
                    kind="RoleBasedGroupSet",
                    reason="UpdatedGroup",
                    message=f"{child.name} updated to generation {view.generation} of the set ({progress})",
                ),
            )
            if not await self._wait_ready(ref, updated, view.generation):
                return
        if stale:
            final = await self._sync(ref)
            if final is not None:
                await self._report(ref, final)

    async def _sync(self, ref: SetRef) -> SetView | None:
        """The set's groups created and deleted to match it, its status written; None once it is gone."""
        view: SetView = await workflow.execute_activity(
            act.sync_set, ref, summary="sync the set's RoleBasedGroups", **acting(self._timeouts)
        )
        if view.gone:
            self.state.deleted = True
            return None
        event = None
        changed = [f"created {', '.join(view.created)}"] if view.created else []
        changed += [f"deleted {', '.join(view.deleted)}"] if view.deleted else []
        if changed:
            message = f"scaled to {view.replicas}: {'; '.join(changed)}"
            event = EventRecord(
                key=ref.key, uid=ref.uid, kind="RoleBasedGroupSet", reason="Scaled", message=message
            )
        problem = view.invalid or (f"names held: {', '.join(view.conflicts)}" if view.conflicts else "")
        if problem and problem != self.state.problem:
            reason = "InvalidSpec" if view.invalid else "NameConflict"
            event = EventRecord(
                key=ref.key,
                uid=ref.uid,
                kind="RoleBasedGroupSet",
                type="Warning",
                reason=reason,
                message=problem,
            )
        self.state.problem = problem
        await self._report(ref, view, event=event)
        return None if view.invalid else view

    async def _report(self, ref: SetRef, view: SetView, event: EventRecord | None = None) -> None:
        await workflow.execute_activity(
            act.report_set,
            SetStatusUpdate(
                key=ref.key,
                uid=ref.uid,
                generation=view.generation,
                replicas=len(view.children),
                ready_replicas=sum(c.ready for c in view.children),
                conditions=conditions(view),
                event=event,
            ),
            summary=f"status: {sum(c.ready for c in view.children)}/{view.replicas} ready",
            **acting(self._timeouts),
        )

    async def _wait_ready(self, ref: SetRef, child: SetChild, generation: int) -> bool:
        """Until the updated group is Ready (True), or a newer generation or a deletion of the set
        interrupts the rollout (False)."""
        while True:
            wait = workflow.start_activity(
                act.wait_set_child,
                SetChildWait(key=ref.key, uid=ref.uid, index=child.index, generation=child.generation),
                summary=f"wait for {child.name} Ready",
                **waiting(self._timeouts),
            )
            interrupted = asyncio.ensure_future(
                workflow.wait_condition(lambda: self._interrupted(generation))
            )
            done, _ = await workflow.wait([wait, interrupted], return_when=asyncio.FIRST_COMPLETED)
            if wait not in done:
                wait.cancel()
                return False
            interrupted.cancel()
            got: SetChild = wait.result()
            if got.ready or got.message == "deleted":
                return True
