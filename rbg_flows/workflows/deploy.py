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
    from rbg_flows.activities.group import GroupActivities
    from rbg_flows.workflows.operation import Operation, acting, settled_conditions
    from rbg_flows.workflows.types import (
        ConditionUpdate,
        DeployInput,
        DeployResult,
        RevisionInfo,
        RoleProgress,
        ValidationReport,
    )

# reason -> (verb in messages, phase while it runs, event reason prefix)
_VERBS = {
    "spec": ("deploy", "Deploying", "Deploy"),
    "repair": ("repair", "Deploying", "Repair"),
    "scale": ("scale", "Scaling", "Scale"),
}


@workflow.defn(name="Deploy")
class DeployWorkflow(Operation):
    @workflow.query
    def progress(self) -> dict[str, RoleProgress]:
        return self._progress

    @workflow.run
    async def run(self, inp: DeployInput) -> DeployResult:
        report = await self._prepare(inp)
        if report.problems:
            return await self._refuse(inp, report, inp.deployed_before)
        verb, _, event = _VERBS[inp.reason]
        try:
            return await self._deploy(inp, report)
        except ActivityError as e:
            if is_cancelled_exception(e):
                raise  # superseded by a newer spec: not a failure
            return await self._fail(inp, verb, str(e.cause or e), f"{event}Failed")

    async def _deploy(self, inp: DeployInput, report: ValidationReport) -> DeployResult:
        gen = inp.event.generation
        verb, phase, event = _VERBS[inp.reason]
        revision: RevisionInfo | None = None
        # Added after the first histories were recorded: replaying those must not schedule it.
        if workflow.patched("controller-revisions"):
            revision = await workflow.execute_activity_method(
                GroupActivities.record_revision,
                inp.event,
                **acting(inp.timeouts),
                summary=f"record revision of generation {gen}",
            )
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
        await self._report(
            inp,
            [
                ConditionUpdate(type="InvalidSpec", status="False", reason="Valid"),
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
            revisions=(revision.previous or revision.name, revision.name) if revision else (None, None),
        )
        generations: dict[str, int] = {}
        for level in report.levels:
            results = await asyncio.gather(*(self._deploy_role(inp, report.roles[r]) for r in level))
            generations.update(dict(results))
        self._stage = f"generation {gen} ready"
        self._details()
        await self._report(
            inp,
            settled_conditions(gen),
            event=(f"{event}Succeeded", f"generation {gen}: all roles ready", False),
            phase="Ready",
            observed_generation=gen,
            revisions=(revision.name, revision.name) if revision else (None, None),
        )
        return DeployResult(
            generation=gen,
            outcome="ready",
            phase="Ready",
            workload_generations=generations,
            revision=revision.revision if revision else 0,
            revision_name=revision.name if revision else "",
            history=revision.history if revision else [],
        )
