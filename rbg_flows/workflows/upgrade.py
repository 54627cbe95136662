"""The Upgrade operation: roll a group to a new revision (also how rollback and abort run).

Roles whose template changed roll in units (roles linked by lock-step rules move together, others on
their own), in stages (`spec.rolloutOrder`; reversed for a rollback). A StatefulSet role is stepped
through its partition: the step planner says how many of its pods may run the new revision after each
step, the partition is set to exactly that, and the step ends when those pods are Ready. Deployment and
LeaderWorkerSet roles roll through their own strategy, as one unit of progress. Roles the new spec adds
are created first, in dependency order.

Every step starts from what the cluster says (pods on the target revision), so a resumed or replayed
step re-applies the same partition and waits for the same pods: a worker killed mid-step resumes at that
step. `pause` holds before the next step; the entity cancels the operation for a newer spec, a rollback
or an abort, and the next operation starts from wherever the pods are.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities import interface as act
    from rbg_flows.api import STATEFULSET, RoleBasedGroup, parse_rbg
    from rbg_flows.messages import (
        RBG_REVISION,
        UPGRADE_WORKFLOW,
        ConditionUpdate,
        DeployResult,
        PartitionRequest,
        PruneRequest,
        RevisionInfo,
        RolePlan,
        RoleProgress,
        RoleRollState,
        StepRequest,
        StepWait,
        UpgradeInput,
        ValidationReport,
    )
    from rbg_flows.rollout.partition import step_target, updated_at
    from rbg_flows.rollout.planner import (
        is_done,
        plan_step,
        resolve,
        state_from_spec,
    )
    from rbg_flows.rollout.steps import step_text, unit_state
    from rbg_flows.rollout.units import Unit, rollout_stages
    from rbg_flows.workflows.operation import Operation, acting, error_text, settled_conditions, waiting

# mode -> (verb in messages, event reason prefix)
_MODES = {
    "upgrade": ("upgrade", "Upgrade"),
    "rollback": ("rollback", "Rollback"),
    "abort": ("abort", "Abort"),
}


@workflow.defn(name=UPGRADE_WORKFLOW)
class UpgradeWorkflow(Operation):
    @workflow.init
    def __init__(self, inp: UpgradeInput) -> None:
        super().__init__()
        self.paused = inp.paused
        self.steps = 0
        self._holding = False

    @workflow.query
    def progress(self) -> dict[str, RoleProgress]:
        return self._progress

    @workflow.signal
    def pause(self) -> None:
        self.paused = True

    @workflow.signal
    def resume(self) -> None:
        self.paused = False

    @workflow.run
    async def run(self, inp: UpgradeInput) -> DeployResult:
        verb, event = _MODES[inp.mode]
        try:
            report = await self._prepare(inp)
            if report.problems:
                return await self._refuse(inp, report, deployed_before=True)
            result = await self._upgrade(inp, report)
            # The profiles the workloads were built with (the entity's revision hashes include them): the
            # operation's own, and as they are now for those it did not know of.
            built = {n: (inp.profiles or {}).get(n, fp) for n, fp in report.profiles.items()}
            return result.model_copy(update={"profiles": built})
        except ActivityError as e:
            if is_cancelled_exception(e):
                raise  # superseded, aborted or rolled back: the entity says so, this is no failure
            return await self._fail(inp, verb, error_text(e), f"{event}Failed")

    def _plans(self, inp: UpgradeInput, report: ValidationReport) -> dict[str, RolePlan]:
        return {
            name: plan.model_copy(update={"replicas": inp.replicas.get(name, plan.replicas)})
            for name, plan in report.roles.items()
        }

    async def _upgrade(self, inp: UpgradeInput, report: ValidationReport) -> DeployResult:
        gen = inp.event.generation
        verb, event = _MODES[inp.mode]
        revision: RevisionInfo = await self._short(
            inp, act.record_revision, inp.event, f"record revision of generation {gen}"
        )
        # Known from here: `RbgRevision=<n>` finds the operation that rolled revision n out.
        workflow.upsert_search_attributes([RBG_REVISION.value_set(revision.revision)])
        rbg, _ = parse_rbg(inp.event.obj)
        assert rbg is not None  # prepare validated it
        plans = self._plans(inp, report)
        self._progress = {
            name: RoleProgress(role=name, replicas=p.replicas, ready=p.replicas, updated=0, done=False)
            for name, p in plans.items()
            if name in inp.roles or name in inp.added
        }
        stages = rollout_stages(rbg.spec, inp.roles, reverse=inp.mode != "upgrade")
        order = " then ".join("+".join("/".join(u) for u in stage) for stage in stages) or "no role"
        self._stage = f"{verb} to revision {revision.revision}: {order}"
        self._details()
        start = self._report(
            inp,
            [
                ConditionUpdate(type="InvalidSpec", status="False", reason="Valid"),
                ConditionUpdate(
                    type="Progressing",
                    status="True",
                    reason="RollingUpdate",
                    message=f"{verb} of generation {gen}",
                ),
                ConditionUpdate(
                    type="RollingUpdateInProgress",
                    status="True",
                    reason="RollingUpdate",
                    message=f"rolling {order} to revision {revision.revision}",
                ),
                # A rollback or abort of a paused rollout runs unpaused: say so from the start.
                *([] if inp.paused else [ConditionUpdate(type="Paused", status="False", reason="NotPaused")]),
            ],
            event=(
                f"{event}Started",
                f"{verb} to revision {revision.revision} ({revision.name}): {order}",
                False,
            ),
            phase="Upgrading",
            revisions=(inp.current_revision or revision.previous or revision.name, revision.name),
        )
        # The start report and the first moves are independent: they overlap.
        started = asyncio.ensure_future(start)
        generations: dict[str, int] = {}
        for level in report.levels:
            added = [r for r in level if r in inp.added]
            results = await asyncio.gather(*(self._deploy_role(inp, plans[r]) for r in added))
            generations.update(dict(results))
        for stage in stages:
            for result in await asyncio.gather(*(self._roll_unit(inp, rbg, unit, plans) for unit in stage)):
                generations.update(result)
        if inp.removed:
            # Last, so the roles that stay are on the new revision before the dropped ones go.
            await self._activity(
                inp,
                act.prune_roles,
                PruneRequest(key=inp.key, uid=inp.event.uid, roles=inp.removed),
                acting(inp.timeouts),
                "delete dropped roles: " + ", ".join(inp.removed),
            )
        self._stage = f"revision {revision.revision} rolled out in {self.steps} steps"
        self._details()
        await started
        done = (f"{event}Succeeded", f"revision {revision.revision}: all roles updated and ready", False)
        if inp.final:
            await self._report_settled(
                inp,
                settled_conditions(gen),
                event=done,
                phase="Ready",
                observed_generation=gen,
                revisions=(revision.name, revision.name),
            )
        else:
            # A scale of the same generation follows; it settles observedGeneration.
            await self._report_settled(
                inp,
                [ConditionUpdate(type="RollingUpdateInProgress", status="False", reason="NoRollingUpdate")],
                event=done,
                revisions=(revision.name, revision.name),
            )
        return DeployResult(
            generation=gen,
            outcome="ready",
            phase="Ready",
            workload_generations=generations,
            revision=revision.revision,
            revision_name=revision.name,
            history=revision.history,
        )

    # -- one unit: roles moving in lock-step ------------------------------------------------------
    async def _roll_unit(
        self, inp: UpgradeInput, rbg: RoleBasedGroup, unit: Unit, plans: dict[str, RolePlan]
    ) -> dict[str, int]:
        stepped = [r for r in unit if plans[r].kind == STATEFULSET]
        native = [r for r in unit if r not in stepped]
        spec = rbg.spec.model_copy(
            update={
                "roles": [r.model_copy(update={"replicas": plans[r.name].replicas}) for r in rbg.spec.roles]
            }
        )
        # The floor of each role: its own partition and its lock-step rules' (the planner's), so that
        # neither the hold nor the final settle moves a pod a rule keeps on the old revision.
        floors = {
            name: role.floor for name, role in resolve(state_from_spec(spec, {}, roles=unit)).roles.items()
        }
        # Hold every StatefulSet on the target template, then let pods a previous run already moved
        # finish (a resumed upgrade continues from there).
        held = await asyncio.gather(*(self._set_partition(inp, plans[r], None, floors[r]) for r in stepped))
        states: dict[str, RoleRollState] = {}
        for st in await asyncio.gather(*(self._finish_moved(inp, st, held=True) for st in held)):
            states[st.role] = st
        native_done = {r: False for r in native}
        generations: dict[str, int] = {}
        while True:
            await self._hold_if_paused(inp)
            # Progress counts the pods at or above the floor: below it nothing moves.
            updated = {r: sum(st.on_target[st.floor :]) for r, st in states.items()}
            rollout = unit_state(spec, unit, updated, native_done)
            if is_done(rollout):
                break
            step = plan_step(rollout)
            self.steps += 1
            moves = [m for m in step.moves if m.pods > 0]
            what = step_text(step)
            self._stage = f"step {self.steps}: {what}"
            self._details()
            moved_native = [m for m in moves if m.name in native_done]
            moved_stateful = [m for m in moves if m.name not in native_done]
            stateful, natives = await asyncio.gather(
                asyncio.gather(
                    *(
                        self._step_stateful(inp, plans[m.name], states[m.name], m.after, what)
                        for m in moved_stateful
                    )
                ),
                asyncio.gather(*(self._deploy_role(inp, plans[m.name]) for m in moved_native)),
            )
            states.update({st.role: st for st in stateful})
            for m, (workload, generation) in zip(moved_native, natives, strict=True):
                native_done[m.name] = True
                generations[workload] = generation
        # Back to the user's partition and the role's own replica count (surge pods reclaimed).
        unsettled = [r for r in stepped if not self._settled(states[r])]
        for st in await asyncio.gather(
            *(self._set_partition(inp, plans[r], floors[r], floors[r]) for r in unsettled)
        ):
            states[st.role] = await self._finish_moved(inp, st)
        generations.update({st.workload: st.generation for st in states.values()})
        return generations

    async def _step_stateful(
        self, inp: UpgradeInput, plan: RolePlan, st: RoleRollState, after: int, what: str
    ) -> RoleRollState:
        partition, want = step_target(st.on_target, st.floor, after)
        t = inp.timeouts
        moved: RoleRollState = await self._activity(
            inp,
            act.step_role,
            StepRequest(
                **self._partition_request(inp, plan, partition, st.floor).model_dump(),
                want=want,
                heartbeat_every_seconds=t.heartbeat_every_seconds,
                deadline_seconds=t.ready_deadline_seconds,
            ),
            waiting(t),
            f"step {self.steps} ({what}): {plan.role} partition {partition}, wait {want} ready",
        )
        if moved.done:
            self._show(moved)
            return moved
        return await self._wait(inp, moved, want)

    async def _set_partition(
        self, inp: UpgradeInput, plan: RolePlan, partition: int | None, floor: int
    ) -> RoleRollState:
        where = "hold" if partition is None else f"partition {partition}"
        return await self._short(
            inp,
            act.set_partition,
            self._partition_request(inp, plan, partition, floor),
            f"{plan.role} StatefulSet {where}",
        )

    @staticmethod
    def _partition_request(
        inp: UpgradeInput, plan: RolePlan, partition: int | None, floor: int
    ) -> PartitionRequest:
        return PartitionRequest(
            ref=inp.ref,
            role=plan.role,
            replicas=plan.replicas,
            partition=partition,
            floor=floor,
        )

    @staticmethod
    def _settled(st: RoleRollState) -> bool:
        """At the user's partition with no surge pod: the last step already left the role as it stays."""
        return st.partition == st.floor and st.total == st.replicas

    async def _finish_moved(
        self, inp: UpgradeInput, st: RoleRollState, *, held: bool = False
    ) -> RoleRollState:
        """Wait for the pods the partition lets move (those of an earlier run, or surge being reclaimed).
        Right after a hold with no surge the state just read may already say so: no wait then."""
        want = updated_at(st.on_target, st.partition)
        if held and st.total == st.replicas and st.ready_on_target >= want:
            self._show(st)
            return st
        return await self._wait(inp, st, want)

    def _show(self, st: RoleRollState) -> None:
        """The role's row of the live progress table (the Temporal UI's current details)."""
        self._progress[st.role] = RoleProgress(
            role=st.role,
            replicas=st.replicas,
            ready=st.ready_on_target,
            updated=st.updated,
            done=st.ready_on_target >= st.replicas - st.floor,
        )
        self._details()

    async def _wait(self, inp: UpgradeInput, st: RoleRollState, want: int) -> RoleRollState:
        t = inp.timeouts
        current = st

        async def once(known: int, remaining: float | None) -> RoleRollState:
            nonlocal current
            self._show(current)
            current = await self._activity(
                inp,
                act.wait_step,
                StepWait(
                    key=inp.key,
                    uid=inp.event.uid,
                    state=current,
                    want=want,
                    known_ready=known,
                    deadline_seconds=remaining,
                    heartbeat_every_seconds=t.heartbeat_every_seconds,
                ),
                waiting(t),
                f"wait {st.role} updated+ready {current.ready_on_target}/{want}",
            )
            return current

        done = await self._wait_loop(inp, st.role, want, st.ready_on_target, once)
        self._show(done)
        return done

    async def _hold_if_paused(self, inp: UpgradeInput) -> None:
        if not self.paused:
            return
        # Units run concurrently: the first to notice reports, the others only wait.
        if not self._holding:
            self._holding = True
            self._stage = f"paused after step {self.steps}"
            self._details()
            await self._report(
                inp,
                [
                    ConditionUpdate(
                        type="Paused",
                        status="True",
                        reason="Paused",
                        message=f"paused after step {self.steps}",
                    ),
                    ConditionUpdate(
                        type="Progressing", status="Unknown", reason="Paused", message="rollout paused"
                    ),
                ],
                event=("RolloutPaused", f"rollout paused after step {self.steps}", False),
                phase="Paused",
            )
        await workflow.wait_condition(lambda: not self.paused)
        if self._holding:
            self._holding = False
            await self._report(
                inp,
                [
                    ConditionUpdate(type="Paused", status="False", reason="Resumed"),
                    ConditionUpdate(
                        type="Progressing", status="True", reason="RollingUpdate", message="resumed"
                    ),
                ],
                event=("RolloutResumed", f"rollout resumed at step {self.steps + 1}", False),
                phase="Upgrading",
            )
