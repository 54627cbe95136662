"""The entity workflow: one per RoleBasedGroup (`rbg.<namespace>.<name>`), owning its orchestration state.

Signals from the watcher are idempotent (a generation already seen is ignored). Operations run one at a
time as child workflows: Deploy (first deploy, repair, or nothing to compare with), Upgrade (the spec
without replicas changed: a new revision) and Scale (only replicas changed; a Deploy that applies the new
counts). A change of both is an Upgrade at the old replicas, then a Scale. A newer spec arriving
mid-operation cancels it at its next step (every step is idempotent) and the next operation starts
straight towards the newest spec: the last writer wins, nothing is lost. The history stays bounded
through continue-as-new.

People steer upgrades through Updates with validators (refused with the reason) and the same verbs as
signals (for the Temporal UI): `rollback(to_revision)` rewrites the spec to that revision's roles with the
current replicas and rolls it out in reverse order; `abort` is a rollback to the revision current before
the upgrade in flight; `pause` holds a rollout before its next step; `resume` lets it go on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities.group import GroupActivities
    from rbg_flows.activities.rollout import RolloutActivities
    from rbg_flows.rollout.classify import (
        Fingerprint,
        changed_roles,
        classify,
        fingerprint,
        upgrade_replicas,
    )
    from rbg_flows.workflows.deploy import DeployWorkflow
    from rbg_flows.workflows.operation import run_short
    from rbg_flows.workflows.types import (
        ConditionUpdate,
        DeployInput,
        DeployResult,
        DriftEvent,
        EntityInput,
        EventRecord,
        GroupState,
        OperationRecord,
        RbgKey,
        RevisionRecord,
        RolloutRequest,
        SpecEvent,
        SpecRewrite,
        StatusUpdate,
        UpgradeInput,
    )
    from rbg_flows.workflows.upgrade import UpgradeWorkflow

RBG_NAMESPACE = SearchAttributeKey.for_keyword("RbgNamespace")
RBG_NAME = SearchAttributeKey.for_keyword("RbgName")
RBG_UID = SearchAttributeKey.for_keyword("RbgUid")
RBG_PHASE = SearchAttributeKey.for_keyword("RbgPhase")
RBG_REVISION = SearchAttributeKey.for_int("RbgRevision")
SEARCH_ATTRIBUTES = (RBG_NAMESPACE, RBG_NAME, RBG_UID, RBG_PHASE, RBG_REVISION)
KEEP_RECENT = 20
# workflow.patched ids: histories before upgrades ran every change as a Deploy; histories before local
# controls ran the rollback's spec rewrite and the controls' Events through the task queue.
UPGRADES = "upgrade-operations"
LOCAL_CONTROLS = "local-controls"


def start_attributes(namespace: str, name: str, uid: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(RBG_NAMESPACE, namespace),
            SearchAttributePair(RBG_NAME, name),
            SearchAttributePair(RBG_UID, uid),
            SearchAttributePair(RBG_PHASE, "Pending"),
        ]
    )


@workflow.defn(name="RoleBasedGroup")
class RoleBasedGroupWorkflow:
    @workflow.init
    def __init__(self, inp: EntityInput) -> None:
        # The carried state is in place before any handler runs: a signal or an update delivered in the
        # first activation of a continued run must see it (and not be overwritten by it).
        self.state: GroupState | None = inp.state
        self._child: ChildWorkflowHandle[Any, DeployResult] | None = None
        self._child_kind = ""

    @property
    def s(self) -> GroupState:
        assert self.state is not None
        return self.state

    # -- messages from the watcher ---------------------------------------------------------------
    @workflow.signal
    def spec_changed(self, event: SpecEvent) -> None:
        s = self._ensure_state()
        if s.uid and event.uid != s.uid:
            # The object was deleted and created again under the same name: a new group. A control
            # waiting for the old one is answered, not left hanging.
            if s.request is not None and not s.request.generation:
                s.request.message = "the RoleBasedGroup was deleted and created again"
            self.state = GroupState(key=s.key, uid=event.uid, latest=event)
            return
        s.uid = event.uid
        if s.latest is None or event.generation > s.latest.generation:
            s.latest = event

    @workflow.signal
    def drifted(self, event: DriftEvent) -> None:
        s = self._ensure_state()
        if event.uid == s.uid and event.generation > s.known_generations.get(event.workload, 0):
            s.drifted[event.workload] = max(event.generation, s.drifted.get(event.workload, 0))

    @workflow.signal
    def deleted(self, uid: str) -> None:
        s = self._ensure_state()
        if not s.uid or uid == s.uid:
            s.deleted = True

    @workflow.query
    def get_state(self) -> GroupState:
        return self.s

    def _ensure_state(self) -> GroupState:
        # A signal can be delivered before run() starts (signal-with-start); the key comes from the id.
        if self.state is None:
            ns, name = workflow.info().workflow_id.split(".", 2)[1:]
            self.state = GroupState(key=RbgKey(namespace=ns, name=name))
        return self.state

    # -- manual controls: Updates (answered) and the same as signals (Temporal UI) ----------------
    @workflow.update
    async def rollback(self, to_revision: int) -> str:
        return await self._rollback(RolloutRequest(to_revision=to_revision))

    @rollback.validator
    def _check_rollback(self, to_revision: int) -> None:
        self._refusal_for_rollback(to_revision)

    @workflow.update
    async def abort(self) -> str:
        return await self._abort()

    @abort.validator
    def _check_abort(self) -> None:
        self._refusal_for_abort()

    @workflow.update
    async def pause(self) -> str:
        return await self._set_paused(True)

    @pause.validator
    def _check_pause(self) -> None:
        self._refusal_for_pause()

    @workflow.update
    async def resume(self) -> str:
        return await self._set_paused(False)

    @resume.validator
    def _check_resume(self) -> None:
        self._refusal_for_resume()

    @workflow.signal(name="request_rollback")
    async def request_rollback(self, to_revision: int) -> None:
        if not self._refused(lambda: self._refusal_for_rollback(to_revision)):
            await self._quietly(self._rollback(RolloutRequest(to_revision=to_revision)))

    @workflow.signal(name="request_abort")
    async def request_abort(self) -> None:
        if not self._refused(self._refusal_for_abort):
            await self._quietly(self._abort())

    @workflow.signal(name="request_pause")
    async def request_pause(self) -> None:
        if not self._refused(self._refusal_for_pause):
            await self._quietly(self._set_paused(True))

    @workflow.signal(name="request_resume")
    async def request_resume(self) -> None:
        if not self._refused(self._refusal_for_resume):
            await self._quietly(self._set_paused(False))

    async def _quietly(self, control: Awaitable[str]) -> None:
        """A signal has nobody to answer: a control that fails is logged, never fails the workflow."""
        try:
            workflow.logger.info(await control)
        except ApplicationError as e:
            workflow.logger.warning("refused: %s", e.message)

    def _refused(self, check: Callable[[], None]) -> bool:
        try:
            check()
        except ApplicationError as e:
            # A signal has no caller to answer: the refusal goes to the log, next to the signal in the UI.
            workflow.logger.warning("refused: %s", e.message)
            return True
        return False

    def _refusal_for_rollback(self, to_revision: int) -> None:
        s = self._ensure_state()
        known = {r.revision: r for r in s.revisions}
        if to_revision not in known:
            have = ", ".join(str(r) for r in sorted(known)) or "none"
            raise ApplicationError(
                f"revision {to_revision} not found (known revisions: {have})", type="Refused"
            )
        in_flight = self._child_kind == "upgrade"
        if not in_flight and s.current_revision is not None and s.current_revision.revision == to_revision:
            raise ApplicationError(f"revision {to_revision} is already the current revision", type="Refused")
        if s.request is not None:
            raise ApplicationError("another rollback is being prepared", type="Refused")

    def _refusal_for_pause(self) -> None:
        if self._ensure_state().paused:
            raise ApplicationError("the rollout is already paused", type="Refused")

    def _refusal_for_resume(self) -> None:
        if not self._ensure_state().paused:
            raise ApplicationError("the rollout is not paused", type="Refused")

    def _refusal_for_abort(self) -> None:
        s = self._ensure_state()
        if self._child_kind != "upgrade":
            raise ApplicationError("no upgrade is in progress", type="Refused")
        if s.current_revision is None:
            raise ApplicationError("there is no earlier revision to return to", type="Refused")
        if s.request is not None:
            raise ApplicationError("another rollback is being prepared", type="Refused")

    async def _abort(self) -> str:
        self._refusal_for_abort()
        assert self.s.current_revision is not None
        return await self._rollback(
            RolloutRequest(to_revision=self.s.current_revision.revision, mode="abort")
        )

    async def _rollback(self, req: RolloutRequest) -> str:
        self.s.request = req
        # The loop rewrites the spec (cancelling an upgrade in flight first); answer once it has.
        await workflow.wait_condition(lambda: req.generation != 0 or bool(req.message))
        if req.generation == 0:
            raise ApplicationError(req.message, type="Refused")
        return req.message

    async def _set_paused(self, paused: bool) -> str:
        s = self.s
        s.paused = paused
        child = self._child
        if child is not None and self._child_kind == "upgrade":
            try:
                await child.signal(UpgradeWorkflow.pause if paused else UpgradeWorkflow.resume)
            except Exception:
                # The operation ended meanwhile: the loop writes the status itself (paused_reported).
                return "paused: the next rollout holds before its first step" if paused else "resumed"
            # The operation reports the hold itself, at the step where it happens.
            s.paused_reported = paused
            return "paused: the rollout holds before its next step" if paused else "resumed"
        return "paused: the next rollout holds before its first step" if paused else "resumed"

    # -- the loop -------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: EntityInput) -> None:
        self._ensure_state()
        while True:
            # self.s, not a local: a signal may replace the state (object re-created under the same name).
            await workflow.wait_condition(
                lambda: (
                    self.s.deleted
                    or self.s.request is not None
                    or self._pending() is not None
                    or self.s.paused != self.s.paused_reported
                    or workflow.info().is_continue_as_new_suggested()
                )
            )
            s = self.s
            if s.deleted:
                self._set_phase("Deleted")
                return
            if s.request is not None:
                await self._rewrite(inp, s.request)
                continue
            kind = self._pending()
            if kind is not None:
                await self._operate(inp, kind)
                continue
            if s.paused != s.paused_reported:
                await self._report_paused(inp)
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(EntityInput(key=s.key, timeouts=inp.timeouts, state=self.s))

    def _pending(self) -> str | None:
        s = self.s
        if s.latest is None:
            return None
        if s.latest.generation > s.settled_generation:
            return "deploy"
        known = s.known_generations
        # Only workloads the group still has: the deletion of a dropped role's workload is no drift.
        if s.deployed and any(w in known and g > known[w] for w, g in s.drifted.items()):
            return "repair"
        return None

    def _set_phase(self, phase: str) -> None:
        if phase != self.s.phase:
            self.s.phase = phase
            workflow.upsert_search_attributes([RBG_PHASE.value_set(phase)])

    def _classify(self, kind: str, target: SpecEvent) -> tuple[str, Fingerprint | None]:
        new = fingerprint(target.obj)
        if kind != "deploy" or not self.s.deployed or not workflow.patched(UPGRADES):
            return kind, new
        if self.s.unsettled_roles and self.s.applied is not None and new is not None:
            # Roles an upgrade left part-way must finish rolling, even back to where they were.
            return "upgrade", new
        return classify(self.s.applied, new), new

    def _rolling_roles(self, applied: Fingerprint, new: Fingerprint) -> list[str]:
        changed = set(changed_roles(applied, new))
        unsettled = {r for r in self.s.unsettled_roles if r in new.role_hashes and r in applied.role_hashes}
        return [r for r in new.role_hashes if r in changed | unsettled]

    async def _operate(self, inp: EntityInput, pending: str) -> None:
        s = self.s
        target = s.latest
        assert target is not None
        kind, new = self._classify(pending, target)
        s.operations += 1
        suffix = target.generation if kind in ("deploy", "upgrade") else f"{target.generation}-{s.operations}"
        op = OperationRecord(
            workflow_id=s.key.operation_id(kind, suffix), kind=kind, generation=target.generation
        )
        s.current = op
        if kind == "repair":
            s.drifted.clear()
        upgrade: UpgradeInput | None = None
        if kind == "upgrade":
            assert s.applied is not None and new is not None
            replicas = upgrade_replicas(s.applied, new)
            upgrade = UpgradeInput(
                key=s.key,
                event=target,
                workflow_id=workflow.info().workflow_id,
                timeouts=inp.timeouts,
                mode=s.modes.get(target.generation, "upgrade"),  # type: ignore[arg-type]
                roles=self._rolling_roles(s.applied, new),
                added=[r for r in new.role_hashes if r not in s.applied.role_hashes],
                removed=[r for r in s.applied.role_hashes if r not in new.role_hashes],
                replicas=replicas,
                current_revision=s.current_revision.name if s.current_revision else None,
                paused=s.paused,
                final=replicas == new.replicas,
            )
            s.paused_reported = s.paused
            self._set_phase("Upgrading")
            handle: ChildWorkflowHandle[Any, DeployResult] = await workflow.start_child_workflow(
                UpgradeWorkflow.run,
                upgrade,
                id=op.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"{upgrade.mode} to generation {target.generation}: "
                + ", ".join(upgrade.roles),
            )
        else:
            self._set_phase("Scaling" if kind == "scale" else "Deploying")
            deploy = await workflow.start_child_workflow(
                DeployWorkflow.run,
                DeployInput(
                    key=s.key,
                    event=target,
                    workflow_id=workflow.info().workflow_id,
                    timeouts=inp.timeouts,
                    reason={"deploy": "spec", "repair": "repair", "scale": "scale"}[kind],  # type: ignore[arg-type]
                    deployed_before=s.deployed,
                ),
                id=op.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"{kind} generation {target.generation}",
            )
            handle = deploy
        self._child, self._child_kind = handle, "upgrade" if upgrade else kind
        uid = s.uid
        try:
            await workflow.wait_condition(
                lambda: (
                    handle.done()
                    or self.s.deleted
                    or self.s.uid != uid
                    or self._superseded(target.generation)
                    or self.s.request is not None
                )
            )
        finally:
            self._child, self._child_kind = None, ""
        if not handle.done():
            handle.cancel()
            op.outcome = "superseded"
            if upgrade is not None:
                self._leave_unsettled(upgrade)
            elif kind == "scale" and self.s.applied is not None and new is not None:
                # The scale's applies may have landed: what follows starts from its counts.
                self.s.applied = self.s.applied.model_copy(update={"replicas": new.replicas})
        try:
            result: DeployResult = await handle
        except ChildWorkflowError as e:
            if op.outcome != "superseded":
                op.outcome, op.message = "failed", str(getattr(e, "cause", None) or e)
                if self.s.uid == uid:
                    # A failed operation settles its generation: it is retried on the next spec change,
                    # not in a hot loop.
                    self.s.settled_generation = max(self.s.settled_generation, target.generation)
                    self._leave_unsettled(upgrade)
                    self._set_phase("Failed")
        else:
            op.outcome = result.outcome
            op.message = result.message
            if self.s.uid == uid:
                self._settle(result, new, upgrade)
        self.s.current = None
        self.s.recent = [*self.s.recent, op][-KEEP_RECENT:]

    def _leave_unsettled(self, upgrade: UpgradeInput | None) -> None:
        """An upgrade that did not finish may have left its roles part-way: the next change rolls them."""
        if upgrade is not None:
            self.s.unsettled_roles = sorted({*self.s.unsettled_roles, *upgrade.roles})

    def _settle(self, result: DeployResult, new: Fingerprint | None, upgrade: UpgradeInput | None) -> None:
        s = self.s
        if result.outcome == "failed":
            self._leave_unsettled(upgrade)
        if upgrade is None or upgrade.final or result.outcome != "ready":
            s.settled_generation = max(s.settled_generation, result.generation)
            s.modes = {g: m for g, m in s.modes.items() if g > s.settled_generation}
        s.known_generations.update(result.workload_generations)
        if upgrade is not None and result.outcome == "ready":
            for role in upgrade.removed:
                s.known_generations.pop(f"{s.key.name}-{role}", None)
        s.drifted = {w: g for w, g in s.drifted.items() if w in s.known_generations}
        if result.outcome == "ready":
            s.deployed = True
            s.unsettled_roles = []
            if new is not None:
                # After an upgrade that a scale follows, the replicas rolled at: the scale is still to do.
                replicas = upgrade.replicas if upgrade is not None else new.replicas
                s.applied = new.model_copy(update={"replicas": replicas})
            if result.revision_name:
                s.current_revision = RevisionRecord(name=result.revision_name, revision=result.revision)
                s.revisions = result.history or s.revisions
        if result.revision:
            workflow.upsert_search_attributes([RBG_REVISION.value_set(result.revision)])
        self._set_phase(result.phase)
        if s.paused:
            s.paused_reported = False  # the operation's final status said "not paused": say it again

    def _superseded(self, generation: int) -> bool:
        latest = self.s.latest
        return latest is not None and latest.generation > generation

    async def _rewrite(self, inp: EntityInput, req: RolloutRequest) -> None:
        s = self.s
        record = next((r for r in s.revisions if r.revision == req.to_revision), None)
        try:
            if record is None:
                raise ApplicationError(f"revision {req.to_revision} is no longer kept")
            event: SpecEvent = await run_short(
                RolloutActivities.rewrite_spec,
                SpecRewrite(key=s.key, uid=s.uid, revision=record.name),
                inp.timeouts,
                f"{req.mode}: rewrite spec to revision {req.to_revision}",
                local=self._local_controls(),
            )
        except Exception as e:  # an activity failure, or the revision vanished
            req.message = f"{req.mode} to revision {req.to_revision} failed: {getattr(e, 'cause', None) or e}"
            workflow.logger.warning(req.message)
            s.request = None
            return
        if event.uid != s.uid:  # replaced while the rewrite ran: the new group is not ours to touch
            req.message = "the RoleBasedGroup was deleted and created again"
            s.request = None
            return
        s.modes[event.generation] = req.mode
        self.spec_changed(event)
        # A resumed rollout after a rollback would surprise: rolling back clears the pause.
        s.paused = False
        req.generation = event.generation
        req.message = (
            f"{req.mode}: rolling back to revision {req.to_revision} as generation {event.generation}"
        )
        s.request = None
        await self._post(
            inp,
            StatusUpdate(key=s.key, uid=s.uid),
            EventRecord(
                key=s.key,
                uid=s.uid,
                reason="RollbackRequested" if req.mode == "rollback" else "AbortRequested",
                message=req.message,
            ),
        )

    async def _report_paused(self, inp: EntityInput) -> None:
        """Pause or resume with no rollout running: only the status and an Event change."""
        s = self.s
        paused = s.paused
        s.paused_reported = paused
        if paused and s.phase != "Paused":
            s.phase_before_pause = s.phase
        # On resume, back to the phase the pause replaced; a phase written since (Failed, Ready) stays.
        restored = (s.phase_before_pause or "Ready") if s.phase == "Paused" else s.phase
        phase = "Paused" if paused else restored
        self._set_phase(phase)
        await self._post(
            inp,
            StatusUpdate(
                key=s.key,
                uid=s.uid,
                phase=phase,
                conditions=[
                    ConditionUpdate(type="Paused", status="True", reason="Paused", message="rollouts paused")
                    if paused
                    else ConditionUpdate(type="Paused", status="False", reason="Resumed")
                ],
            ),
            EventRecord(
                key=s.key,
                uid=s.uid,
                reason="RolloutPaused" if paused else "RolloutResumed",
                message="rollouts paused" if paused else "rollouts resumed",
            ),
        )

    async def _post(self, inp: EntityInput, update: StatusUpdate, event: EventRecord) -> None:
        await run_short(
            GroupActivities.report,
            update.model_copy(update={"event": event}),
            inp.timeouts,
            f"event {event.reason}",
            local=self._local_controls(),
        )

    def _local_controls(self) -> bool:
        # Histories recorded before ran the rewrite and its Event through the task queue.
        return workflow.patched(LOCAL_CONTROLS)
