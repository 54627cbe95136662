"""One role of a deploy in one activity: apply its workload, then wait for it on the shared watch cache.

An apply and a wait used to be two activities, so each role cost two billed actions and two workflow
task round trips; a later call (progress to report, a deadline passed) passes what was applied and only
waits. Re-running the apply after a retry is harmless: server-side apply under one field manager.
"""

from __future__ import annotations

from temporalio import activity

from rbg_flows.activities.apply import ApplyActivities
from rbg_flows.activities.wait import WaitActivities
from rbg_flows.messages import DeployedRole, RoleDeploy, RoleRequest, WaitRequest, WaitTiming


class DeployRoleActivities:
    def __init__(self, apply: ApplyActivities, wait: WaitActivities):
        self.apply = apply
        self.wait = wait

    @activity.defn(name="deploy_role")
    async def deploy_role(self, req: RoleDeploy) -> DeployedRole:
        applied = req.applied or await self.apply.apply(
            RoleRequest(
                ref=req.ref,
                role=req.plan.role,
                placement=req.placement,
                replicas=req.plan.replicas if req.step else None,
            )
        )
        timing = req.model_dump(include=set(WaitTiming.model_fields))
        progress = await self.wait.wait(
            WaitRequest(
                key=req.key,
                uid=req.ref.uid,
                plan=req.plan,
                min_generation=applied.generation,
                gate=req.gate,
                replaced=req.replaced,
                **timing,
            )
        )
        return DeployedRole(applied=applied, progress=progress)
