"""The Deploy operation: converge a group to one spec, role by role in dependency order.

Roles of one dependency level run in parallel; a role's workload is applied only once every role it
depends on is Ready. Re-running it is safe (server-side apply), which is also how drift is repaired and
how a replicas-only change (a Scale) is carried out.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities import interface as act
    from rbg_flows.messages import (
        DEPLOY_WORKFLOW,
        RBG_REVISION,
        ConditionUpdate,
        DeletePods,
        DeployInput,
        DeployResult,
        PlacementChoice,
        PodRef,
        ReplicasRequest,
        RolePodsRequest,
        RoleProgress,
        ValidationReport,
    )
    from rbg_flows.rollout.scaling import coordinated_roles, moves_text, next_counts, progression_of
    from rbg_flows.workflows.operation import Operation, acting, error_text, settled_conditions

# The placement step (workflow.patched): histories recorded before it replay without it.
PLACEMENT_PATCH = "placement"
# Coordinated scaling in steps (workflow.patched): a Scale recorded before it replays in one step.
COORDINATED_SCALING_PATCH = "coordinated-scaling"

# reason -> (verb in messages, phase while it runs, event reason prefix)
_VERBS = {
    "spec": ("deploy", "Deploying", "Deploy"),
    "repair": ("repair", "Deploying", "Repair"),
    "scale": ("scale", "Scaling", "Scale"),
    # Re-applying a group deployed under older object names (messages.NAMING_SCHEME) to move them.
    "migrate": ("migration", "Deploying", "Migrate"),
    # RecreateRBGOnPodRestart: every role's pods recreated in dependency order (docs/failover.md).
    "failover": ("failover", "Recovering", "Failover"),
}


@workflow.defn(name=DEPLOY_WORKFLOW)
class DeployWorkflow(Operation):
    @workflow.query
    def progress(self) -> dict[str, RoleProgress]:
        return self._progress

    @workflow.run
    async def run(self, inp: DeployInput) -> DeployResult:
        verb, _, event = _VERBS[inp.reason]
        try:
            report = await self._prepare(inp)
            if report.problems:
                return await self._refuse(inp, report, inp.deployed_before)
            result = await self._deploy(inp, report)
            # The profiles the workloads were built with (the entity's revision hashes include them): the
            # operation's own, and as they are now for those it did not know of.
            built = {n: (inp.profiles or {}).get(n, fp) for n, fp in report.profiles.items()}
            return result.model_copy(update={"profiles": built})
        except ActivityError as e:
            if is_cancelled_exception(e):
                raise  # superseded by a newer spec: not a failure
            return await self._fail(inp, verb, error_text(e), f"{event}Failed")

    async def _deploy(self, inp: DeployInput, report: ValidationReport) -> DeployResult:
        gen = inp.event.generation
        verb, phase, event = _VERBS[inp.reason]
        placement = PlacementChoice()
        # Only groups that ask for placement take the step (and the marker): every other history replays
        # as it was recorded.
        if report.placement and workflow.patched(PLACEMENT_PATCH):
            placement = await self._place(inp)
            if placement.error:
                return await self._unplaceable(inp, placement)
        revision = await self._short(
            inp, act.record_revision, inp.event, f"record revision of generation {gen}"
        )
        # Known from here: `RbgRevision=<n>` finds the operation that rolled revision n out.
        workflow.upsert_search_attributes([RBG_REVISION.value_set(revision.revision)])
        self._stage = f"{verb} generation {gen}"
        self._progress = {
            name: RoleProgress(role=name, replicas=p.replicas, ready=0, updated=0, done=False)
            for name, p in report.roles.items()
        }
        self._details()
        not_ready = (
            []
            if inp.deployed_before
            else [ConditionUpdate(type="Ready", status="False", reason="RoleNotReady", message="deploying")]
        )
        restarting = (
            [
                ConditionUpdate(
                    type="RestartInProgress",
                    status="True",
                    reason="RecreatingGroup",
                    message=inp.failure or "recreating every pod of the group",
                ),
                ConditionUpdate(type="Ready", status="False", reason="Recovering", message=inp.failure),
            ]
            if inp.reason == "failover"
            else []
        )
        await self._report(
            inp,
            [
                ConditionUpdate(type="InvalidSpec", status="False", reason="Valid"),
                *restarting,
                ConditionUpdate(
                    type="Progressing",
                    status="True",
                    reason=phase,
                    message=f"{verb} of generation {gen} in progress",
                ),
                *not_ready,
            ],
            event=(f"{event}Started", f"{verb} of generation {gen} started: levels {report.levels}", False),
            phase=phase,
            revisions=(revision.previous or revision.name, revision.name),
            placement=placement.status or None,
        )
        # A Scale moves the roles of its coordination rules together, in steps, as one unit that runs
        # with the first dependency level holding one of them (they all run already: a Scale never
        # creates a role); the other roles go level by level as in any deploy.
        coordinated: list[str] = []
        if inp.reason == "scale" and report.scaling and workflow.patched(COORDINATED_SCALING_PATCH):
            coordinated = coordinated_roles(report.scaling)
        unit_level = next((i for i, lv in enumerate(report.levels) if set(lv) & set(coordinated)), -1)
        generations: dict[str, int] = {}
        for i, level in enumerate(report.levels):
            if inp.reason == "failover":
                generations.update(await self._recreate(inp, report, level, placement))
                continue
            jobs = [self._deploy_roles(inp, report, [r for r in level if r not in coordinated], placement)]
            if i == unit_level:
                jobs.append(self._scale_in_steps(inp, report, coordinated, placement))
            for done in await asyncio.gather(*jobs):
                generations.update(done)
        self._stage = f"generation {gen} ready"
        self._details()
        await self._report_settled(
            inp,
            settled_conditions(gen),
            event=(f"{event}Succeeded", f"generation {gen}: all roles ready", False),
            phase="Ready",
            observed_generation=gen,
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

    async def _deploy_roles(
        self, inp: DeployInput, report: ValidationReport, roles: list[str], placement: PlacementChoice
    ) -> dict[str, int]:
        results = await asyncio.gather(
            *(self._deploy_role(inp, report.roles[r], placement.roles.get(r)) for r in roles)
        )
        return dict(results)

    async def _recreate(
        self, inp: DeployInput, report: ValidationReport, level: list[str], placement: PlacementChoice
    ) -> dict[str, int]:
        """A failover's level: the pods its roles have now (read once, so a retry or a replay deletes
        these and never the new ones), deleted, then every role waited Ready on pods that are not them."""
        roles = ", ".join(level)
        failed = inp.failed
        request = RolePodsRequest(
            ref=inp.ref,
            roles=level,
            failed=PodRef(name=failed.pod, uid=failed.pod_uid) if failed is not None else None,
        )
        pods = await self._short(inp, act.role_pods, request, f"pods of {roles}")
        doomed = [p for role in level for p in pods.get(role, [])]
        self._stage = f"recreating {len(doomed)} pods of {roles}"
        self._details()
        await self._activity(
            inp,
            act.delete_pods,
            DeletePods(key=inp.key, pods=doomed),
            acting(inp.timeouts),
            f"recreate {len(doomed)} pods of {roles}",
        )
        results = await asyncio.gather(
            *(
                self._deploy_role(
                    inp,
                    report.roles[r],
                    placement.roles.get(r),
                    replaced=[p.uid for p in pods.get(r, [])],
                )
                for r in level
            )
        )
        return dict(results)

    async def _scale_in_steps(
        self, inp: DeployInput, report: ValidationReport, roles: list[str], placement: PlacementChoice
    ) -> dict[str, int]:
        """Grow or shrink `roles` in the steps of their scaling rules (rollout/scaling.py): each step
        applies every moving role at its step count and waits for its gate (bound to nodes, or Ready)
        before the next. The start is read once, so a retried or replayed operation takes the same
        steps; the spec's replicas are never rewritten. Last, every role is deployed as its spec says
        and waited Ready, as in any deploy."""
        rules = report.scaling
        target = {r: report.roles[r].replicas for r in roles}
        start = await self._short(
            inp,
            act.read_replicas,
            ReplicasRequest(ref=inp.ref, roles=roles),
            f"read replicas of {', '.join(roles)}",
        )
        start = {r: start.get(r, 0) for r in roles}
        current = dict(start)
        step = 0
        while (counts := next_counts(start, target, current, rules)) is not None:
            step += 1
            moving = [r for r in roles if counts[r] != current[r]]
            moves = moves_text(current, counts)
            name = f"scale step {step}"
            self._stage = f"{name}: {moves}"
            self._details()
            await self._report(
                inp,
                [
                    ConditionUpdate(
                        type="Progressing", status="True", reason="Scaling", message=f"{name}: {moves}"
                    )
                ],
                event=("ScaleStep", f"{name}: {moves}", False),
                phase="Scaling",
            )
            await asyncio.gather(
                *(
                    self._deploy_role(
                        inp,
                        report.roles[r].model_copy(update={"replicas": counts[r]}),
                        placement.roles.get(r),
                        step=name,
                        gate="ready" if progression_of(r, rules) == "OrderReady" else "scheduled",
                    )
                    for r in moving
                )
            )
            current = counts
        return await self._deploy_roles(inp, report, roles, placement)

    async def _place(self, inp: DeployInput) -> PlacementChoice:
        self._stage = f"placing generation {inp.event.generation}"
        self._details()
        choice: PlacementChoice = await self._activity(
            inp, act.place, inp.ref, acting(inp.timeouts), f"place generation {inp.event.generation}"
        )
        self._stage = choice.summary
        self._details()
        return choice

    async def _unplaceable(self, inp: DeployInput, choice: PlacementChoice) -> DeployResult:
        """Required placement and nothing fits: no workload is created (or changed), and the reason is
        where people look. The next spec change, or a retry of the group, tries again."""
        gen = inp.event.generation
        message = choice.error or "no placement"
        self._stage = f"cannot place generation {gen}: {message}"
        self._details()
        phase = "Degraded" if inp.deployed_before else "Failed"
        not_ready = (
            []
            if inp.deployed_before
            else [ConditionUpdate(type="Ready", status="False", reason="Unplaceable", message=message)]
        )
        await self._report(
            inp,
            [
                ConditionUpdate(type="Progressing", status="False", reason="Unplaceable", message=message),
                *not_ready,
            ],
            event=("Unplaceable", message, True),
            phase=phase,
            observed_generation=gen,
            placement=choice.status or None,
        )
        return DeployResult(generation=gen, outcome="failed", phase=phase, message=message)
