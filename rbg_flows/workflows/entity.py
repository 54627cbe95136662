"""The entity workflow: one per RoleBasedGroup (`rbg.<namespace>.<name>`), owning its orchestration state.

Signals from the watcher are idempotent (a generation already seen is ignored). Operations run one at a
time as child workflows; a newer spec arriving mid-operation cancels it at its next step (every step is
idempotent) and the next operation starts straight towards the newest spec: the last writer wins,
nothing is lost. The history stays bounded through continue-as-new.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from rbg_flows.workflows.deploy import DeployWorkflow
    from rbg_flows.workflows.types import (
        DeployInput,
        DeployResult,
        DriftEvent,
        EntityInput,
        GroupState,
        OperationRecord,
        RbgKey,
        SpecEvent,
    )

RBG_NAMESPACE = SearchAttributeKey.for_keyword("RbgNamespace")
RBG_NAME = SearchAttributeKey.for_keyword("RbgName")
RBG_UID = SearchAttributeKey.for_keyword("RbgUid")
RBG_PHASE = SearchAttributeKey.for_keyword("RbgPhase")
RBG_REVISION = SearchAttributeKey.for_int("RbgRevision")
SEARCH_ATTRIBUTES = (RBG_NAMESPACE, RBG_NAME, RBG_UID, RBG_PHASE, RBG_REVISION)
KEEP_RECENT = 20


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
    def __init__(self) -> None:
        self.state: GroupState | None = None

    @property
    def s(self) -> GroupState:
        assert self.state is not None
        return self.state

    # -- messages from the watcher ---------------------------------------------------------------
    @workflow.signal
    def spec_changed(self, event: SpecEvent) -> None:
        s = self._ensure_state()
        if s.uid and event.uid != s.uid:
            # The object was deleted and created again under the same name: a new group.
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

    # -- the loop -------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: EntityInput) -> None:
        if inp.state is not None:
            self.state = inp.state
        self._ensure_state()
        while True:
            # self.s, not a local: a signal may replace the state (object re-created under the same name).
            await workflow.wait_condition(
                lambda: (
                    self.s.deleted
                    or self._pending() is not None
                    or workflow.info().is_continue_as_new_suggested()
                )
            )
            s = self.s
            if s.deleted:
                self._set_phase("Deleted")
                return
            kind = self._pending()
            if kind is not None:
                await self._operate(inp, kind)
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(EntityInput(key=s.key, timeouts=inp.timeouts, state=self.s))

    def _pending(self) -> str | None:
        s = self.s
        if s.latest is None:
            return None
        if s.latest.generation > s.settled_generation:
            return "deploy"
        if s.deployed and any(g > s.known_generations.get(w, 0) for w, g in s.drifted.items()):
            return "repair"
        return None

    def _set_phase(self, phase: str) -> None:
        if phase != self.s.phase:
            self.s.phase = phase
            workflow.upsert_search_attributes([RBG_PHASE.value_set(phase)])

    async def _operate(self, inp: EntityInput, kind: str) -> None:
        s = self.s
        target = s.latest
        assert target is not None
        s.operations += 1
        suffix = target.generation if kind == "deploy" else f"{target.generation}-{s.operations}"
        op = OperationRecord(
            workflow_id=s.key.operation_id(kind, suffix), kind=kind, generation=target.generation
        )
        s.current = op
        if kind == "repair":
            s.drifted.clear()
        self._set_phase("Deploying")
        handle = await workflow.start_child_workflow(
            DeployWorkflow.run,
            DeployInput(
                key=s.key,
                event=target,
                workflow_id=workflow.info().workflow_id,
                timeouts=inp.timeouts,
                reason="spec" if kind == "deploy" else "repair",
                deployed_before=s.deployed,
            ),
            id=op.workflow_id,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            static_summary=f"{kind} generation {target.generation}",
        )
        uid = s.uid
        await workflow.wait_condition(
            lambda: (
                handle.done() or self.s.deleted or self.s.uid != uid or self._superseded(target.generation)
            )
        )
        if not handle.done():
            handle.cancel()
            op.outcome = "superseded"
        try:
            result: DeployResult = await handle
        except ChildWorkflowError as e:
            if op.outcome != "superseded":
                op.outcome, op.message = "failed", str(getattr(e, "cause", None) or e)
                if self.s.uid == uid:
                    # A failed operation settles its generation: it is retried on the next spec change,
                    # not in a hot loop.
                    self.s.settled_generation = max(self.s.settled_generation, target.generation)
                    self._set_phase("Failed")
        else:
            op.outcome = result.outcome
            op.message = result.message
            if self.s.uid == uid:
                self.s.settled_generation = max(self.s.settled_generation, result.generation)
                self.s.known_generations.update(result.workload_generations)
                if result.outcome == "ready":
                    self.s.deployed = True
                if result.revision:
                    workflow.upsert_search_attributes([RBG_REVISION.value_set(result.revision)])
                self._set_phase(result.phase)
        self.s.current = None
        self.s.recent = [*self.s.recent, op][-KEEP_RECENT:]

    def _superseded(self, generation: int) -> bool:
        latest = self.s.latest
        return latest is not None and latest.generation > generation
