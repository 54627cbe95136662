"""The entity workflow: one per RoleBasedGroup (`rbg.<cluster>.<namespace>.<name>`), owning its orchestration
state.

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

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from rbg_flows.activities import interface as act
    from rbg_flows.api.rbg import RestartPolicyConfig, RoleSpec
    from rbg_flows.messages import (
        ENTITY_WORKFLOW,
        RBG_PHASE,
        RBG_REVISION,
        RBG_UID,
        AdapterChanged,
        AdapterSync,
        AdapterSyncResult,
        ConditionUpdate,
        DeletePods,
        DeployInput,
        DeployResult,
        DriftEvent,
        EntityInput,
        EventRecord,
        Fingerprint,
        GroupState,
        OperationRecord,
        PendingFailover,
        PodFailure,
        PodRef,
        ProfileChange,
        RevisionRecord,
        RolloutRequest,
        SpecEvent,
        SpecRewrite,
        StatusUpdate,
        Timeouts,
        UpgradeInput,
        operation_attributes,
    )
    from rbg_flows.rollout.classify import (
        changed_roles,
        classify,
        fingerprint,
        upgrade_replicas,
    )
    from rbg_flows.rollout.restarts import decide, stability_window
    from rbg_flows.workflows.deploy import DeployWorkflow
    from rbg_flows.workflows.operation import RETRY, run_short
    from rbg_flows.workflows.upgrade import UpgradeWorkflow

KEEP_RECENT = 20
# Operation kind -> why the Deploy workflow runs (DeployInput.reason).
_DEPLOY_REASONS = {
    "deploy": "spec",
    "repair": "repair",
    "scale": "scale",
    "migrate": "migrate",
    "failover": "failover",
}
# workflow.patched id of engine runtime profiles: a signalled profile change starts an operation of the
# current generation, and the profiles an operation built with enter the group's fingerprints.
PROFILES_PATCH = "engine-runtime-profiles"
# Operations that delete pods themselves (through the workload controllers): a deletion while one runs is
# theirs. A first deploy does not: a pod deleted then, even in the moment between the group turning Ready
# and the operation returning, is a failure.
_REPLACING = ("upgrade", "scale", "repair", "migrate")
# workflow.patched id of scaling adapters: groups with adapters sync them before each operation.
ADAPTERS_PATCH = "scaling-adapters"


def failure_text(pending: PendingFailover | None) -> str:
    if pending is None:
        return ""
    f = pending.failure
    also = f" (and {pending.failures - 1} more failures)" if pending.failures > 1 else ""
    return f"pod {f.pod} of role {f.role} {f.reason}{also}: recreating every pod of the group"


def role_of(obj: dict[str, Any], name: str) -> RoleSpec | None:
    """One role of a RoleBasedGroup object as the model reads it, or None (absent, or it does not parse)."""
    for role in (obj.get("spec") or {}).get("roles") or []:
        if isinstance(role, dict) and role.get("name") == name:
            try:
                return RoleSpec.model_validate(role)
            except ValidationError:
                return None
    return None


def uses_adapters(obj: dict[str, Any]) -> bool:
    """Whether some role of a RoleBasedGroup object has scalingAdapter.enable (read without parsing)."""
    roles = (obj.get("spec") or {}).get("roles") or []
    return any(
        isinstance(role, dict)
        and isinstance(role.get("scalingAdapter"), dict)
        and role["scalingAdapter"].get("enable") is True
        for role in roles
    )


def used_profiles(obj: dict[str, Any]) -> set[str]:
    """The ClusterEngineRuntimeProfiles a RoleBasedGroup object's roles name (read without parsing it)."""
    roles = (obj.get("spec") or {}).get("roles") or []
    return {
        str(rt.get("profileName"))
        for role in roles
        if isinstance(role, dict)
        for rt in role.get("engineRuntimes") or []
        if isinstance(rt, dict) and rt.get("profileName")
    }


@workflow.defn(name=ENTITY_WORKFLOW)
class RoleBasedGroupWorkflow:
    @workflow.init
    def __init__(self, inp: EntityInput) -> None:
        # The carried state is in place before any handler runs: a signal or an update delivered in the
        # first activation of a continued run must see it (and not be overwritten by it).
        self.state: GroupState | None = inp.state
        self._key = inp.key
        self._child: ChildWorkflowHandle[Any, DeployResult] | None = None
        self._child_kind = ""
        # The worker's settings as last read (each operation reads them afresh when it starts).
        self._timeouts = Timeouts()
        # Whether the loop's wait has a timer (a failover in its backoff).
        self._timed = False

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
            # The watcher's resync finds entities by this uid: it must name the group now served.
            workflow.upsert_search_attributes([RBG_UID.value_set(event.uid)])
            return
        s.uid = event.uid
        s.naming_seen = max(s.naming_seen, event.naming)
        if s.latest is None or event.generation > s.latest.generation:
            s.latest = event

    @workflow.signal
    def drifted(self, event: DriftEvent) -> None:
        s = self._ensure_state()
        if event.uid == s.uid and event.generation > s.known_generations.get(event.workload, 0):
            s.drifted[event.workload] = max(event.generation, s.drifted.get(event.workload, 0))

    @workflow.signal
    def profile_changed(self, change: ProfileChange) -> None:
        """A profile the group uses was created or changed. RollingUpdate: an upgrade when its content is
        not what the group was built with. NoUpdate: nothing, unless the group waits for the profile (its
        spec was refused, e.g. for naming a profile that did not exist yet; or not deployed yet) or the
        profile was RollingUpdate until now (its fingerprint leaves the hashes)."""
        s = self._ensure_state()
        if s.latest is None or change.name not in used_profiles(s.latest.obj):
            return
        last = s.recent[-1] if s.recent else None
        refused = last is not None and last.generation == s.latest.generation and last.outcome != "ready"
        # An operation in flight may have read the profiles before this change: one more follows it.
        settled = s.deployed and s.current is None and not refused
        known = s.profiles.get(change.name)
        if change.update_strategy == "RollingUpdate":
            if known == change.fingerprint and settled:
                return
            s.profiles[change.name] = change.fingerprint
        else:
            if known is None and settled:
                return
            s.profiles.pop(change.name, None)
        s.profiles_pending = True

    @workflow.signal
    def adapter_changed(self, change: AdapterChanged) -> None:
        """An adapter of the group was scaled (kubectl scale, an HPA), created or deleted: sync them."""
        s = self._ensure_state()
        if s.uid and change.uid == s.uid:
            s.adapters_pending = True

    @workflow.signal
    def pod_failed(self, failure: PodFailure) -> None:
        """A pod of the group failed: what its role's restart policy asks (docs/failover.md)."""
        s = self._ensure_state()
        if s.deleted or s.latest is None:
            return
        role = role_of(s.latest.obj, failure.role)
        if role is None:
            return
        policy = role.effective_restart_policy
        if policy == "None" or s.restarts_exhausted or self._child_kind == "failover":
            return  # the workload controller replaces it; or stopped by maxRestarts; or folded in
        if self._child_kind in _REPLACING and failure.reason == "deleted":
            return  # the operation replaces pods (a rolling update, a scale-in): not failures
        if policy == "RecreateRoleInstanceOnPodRestart":
            # A LeaderWorkerSet recreates its own group (its restartPolicy says so); a deleted pod is
            # being replaced already.
            known = any(f.pod_uid == failure.pod_uid for f in s.instance_recreations)
            if not role.is_leader_worker_set and failure.reason != "deleted" and not known:
                s.instance_recreations.append(failure)
            return
        if s.failover is None:
            s.failover = PendingFailover(failure=failure, at=workflow.now().timestamp())
        else:
            s.failover.failures += 1

    @workflow.signal
    def deleted(self, uid: str) -> None:
        s = self._ensure_state()
        if not s.uid or uid == s.uid:
            s.deleted = True

    @workflow.query
    def get_state(self) -> GroupState:
        return self.s

    def _ensure_state(self) -> GroupState:
        # A signal can be delivered before run() starts (signal-with-start); the key comes with the input
        # (the id could be parsed too, but the input says which cluster without guessing at dots).
        if self.state is None:
            # The phase it was started with (the watcher's start attributes), so the first operation's
            # phase is not upserted again.
            started = workflow.info().typed_search_attributes.get(RBG_PHASE)
            self.state = GroupState(key=self._key, phase=started or GroupState.model_fields["phase"].default)
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
            # A failover waiting for its backoff wakes the loop when it is due (only then is there a timer).
            wake = self._failover_wait()
            self._timed = wake is not None
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        self.s.deleted
                        or self.s.request is not None
                        or self._pending() is not None
                        or self._adapters_due()
                        or self._failover_due()
                        or bool(self.s.instance_recreations)
                        # a failure in its backoff arrived: go round to set the timer for it
                        or (self.s.failover is not None and not self._timed)
                        or self.s.paused != self.s.paused_reported
                        or workflow.info().is_continue_as_new_suggested()
                    ),
                    timeout=wake,
                )
            s = self.s
            if s.deleted:
                self._set_phase("Deleted")
                return
            if s.request is not None:
                await self._rewrite(s.request)
                continue
            if self._adapters_due():
                await self._sync_adapters()
                continue
            kind = self._pending()
            if kind is not None:
                await self._operate(kind)
                # Adapters mirror the role as the operation left it (status replicas, readyReplicas).
                self.s.adapters_pending = self.s.adapters_pending or self.s.adapters
                continue
            if s.instance_recreations:
                await self._recreate_instances()
                continue
            if self._failover_due():
                await self._failover()
                continue
            if s.paused != s.paused_reported:
                await self._report_paused()
                continue
            if s.failover is not None and not workflow.info().is_continue_as_new_suggested():
                continue  # woken during its backoff: wait on
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(EntityInput(key=s.key, state=self.s))

    def _restart_config(self) -> RestartPolicyConfig:
        s = self.s
        assert s.failover is not None and s.latest is not None
        role = role_of(s.latest.obj, s.failover.failure.role)
        return role.effective_restart_policy_config if role is not None else RestartPolicyConfig()

    def _failover_due(self) -> bool:
        """A pending group recreation whose backoff has passed (or that maxRestarts stops)."""
        s = self.s
        if s.failover is None or s.deleted or self._pending() is not None:
            return False
        decision = decide(self._restart_config(), s.restarts, workflow.now().timestamp())
        return decision.exceeded or decision.due <= workflow.now().timestamp()

    def _failover_wait(self) -> float | None:
        s = self.s
        if s.failover is None or s.deleted:
            return None
        decision = decide(self._restart_config(), s.restarts, workflow.now().timestamp())
        return max(0.001, decision.due - workflow.now().timestamp())

    async def _failover(self) -> None:
        s = self.s
        pending = s.failover
        assert pending is not None
        config = self._restart_config()
        now = workflow.now().timestamp()
        decision = decide(config, s.restarts, now)
        f = pending.failure
        if decision.exceeded:
            s.failover = None
            s.restarts_exhausted = True
            window = stability_window(config)
            message = (
                f"pod {f.pod} of role {f.role} {f.reason}; the group was recreated {decision.recent} times "
                f"within {window:.0f}s (maxRestarts {config.max_restarts}): it is left as it is; change "
                "its spec to try again"
            )
            self._set_phase("Failed")
            await self._post(
                StatusUpdate(
                    key=s.key,
                    uid=s.uid,
                    phase="Failed",
                    conditions=[
                        ConditionUpdate(
                            type="RestartInProgress",
                            status="False",
                            reason="MaxRestartsExceeded",
                            message=message,
                        ),
                        ConditionUpdate(
                            type="Ready", status="False", reason="MaxRestartsExceeded", message=message
                        ),
                    ],
                ),
                EventRecord(
                    key=s.key, uid=s.uid, type="Warning", reason="MaxRestartsExceeded", message=message
                ),
            )
            return
        # Failures from here on fold into this recreation (pod_failed ignores them while it runs).
        s.failover = None
        await self._operate("failover", pending)
        # The backoff counts from when the group is back: how long it then ran without a failure.
        done = workflow.now().timestamp()
        s.restarts = [t for t in s.restarts if done - t < stability_window(config)] + [done]

    async def _recreate_instances(self) -> None:
        """RecreateRoleInstanceOnPodRestart on a StatefulSet or Deployment role: that pod only, deleted
        (uid precondition) so its controller makes it afresh."""
        s = self.s
        failures, s.instance_recreations = s.instance_recreations, []
        await self._settings()
        deleted = await run_short(
            act.delete_pods,
            DeletePods(key=s.key, pods=[PodRef(name=f.pod, uid=f.pod_uid) for f in failures]),
            self._timeouts,
            f"recreate {', '.join(f.pod for f in failures)}",
        )
        for f in failures[:deleted]:
            await self._post(
                StatusUpdate(key=s.key, uid=s.uid),
                EventRecord(
                    key=s.key,
                    uid=s.uid,
                    reason="InstanceRecreated",
                    message=f"pod {f.pod} of role {f.role} {f.reason}: recreated "
                    "(RecreateRoleInstanceOnPodRestart)",
                ),
            )

    def _adapters_due(self) -> bool:
        """A group that has (or had) scaling adapters syncs them before an operation of a new generation
        (a re-apply that dropped a role's replicas must not scale it down first) and when one changed.
        Groups without adapters never take the step, so their histories replay as recorded."""
        s = self.s
        if s.latest is None or s.deleted or s.request is not None:
            return False
        new_spec = s.latest.generation > max(s.settled_generation, s.adapters_synced)
        involved = s.adapters or uses_adapters(s.latest.obj)
        return involved and (s.adapters_pending or new_spec)

    async def _sync_adapters(self) -> None:
        s = self.s
        s.adapters_pending = False
        latest = s.latest
        assert latest is not None
        if not workflow.patched(ADAPTERS_PATCH):
            s.adapters_synced = latest.generation  # recorded before adapters were served: as it ran then
            return
        try:
            result: AdapterSyncResult = await run_short(
                act.sync_adapters,
                AdapterSync(key=s.key, uid=s.uid),
                await self._settings(),
                "sync scaling adapters",
            )
        except ActivityError as e:
            # The spec changed under the sync (its event brings another), or the API refused: the
            # operation goes on with the spec as it is rather than wedging the group.
            workflow.logger.warning(f"scaling adapters not synced: {getattr(e, 'cause', None) or e}")
            s.adapters_synced = latest.generation
            return
        s.adapters = result.uses_adapters
        event = result.event
        if event is not None and event.uid == s.uid:
            # The generation the adapters now agree with; a rewrite is a new generation, the operation's.
            s.adapters_synced = max(s.adapters_synced, event.generation)
            self.spec_changed(event)
        else:
            s.adapters_synced = max(s.adapters_synced, latest.generation)
        for record in result.events:
            await self._post(StatusUpdate(key=s.key, uid=s.uid), record)

    def _pending(self) -> str | None:
        s = self.s
        if s.latest is None:
            return None
        if s.latest.generation > s.settled_generation:
            return "deploy"
        # Only a profile signal sets it, which histories from before profiles never have.
        if s.profiles_pending and workflow.patched(PROFILES_PATCH):
            return "deploy"
        known = s.known_generations
        # Only workloads the group still has: the deletion of a dropped role's workload is no drift.
        if s.deployed and any(w in known and g > known[w] for w, g in s.drifted.items()):
            return "repair"
        if s.deployed and s.naming < s.naming_seen:
            # Deployed by a version that named objects otherwise (v0.4's Services): re-applied once, which
            # moves them without replacing a pod. Only events of newer code say so: old runs replay as before.
            return "migrate"
        return None

    def _set_phase(self, phase: str, *also: SearchAttributeUpdate[Any]) -> None:
        """Upsert the phase (and `also`) in one command: each upsert is a billed action."""
        updates = list(also)
        if phase != self.s.phase:
            self.s.phase = phase
            updates.append(RBG_PHASE.value_set(phase))
        if updates:
            workflow.upsert_search_attributes(updates)

    def _classify(self, kind: str, target: SpecEvent) -> tuple[str, Fingerprint | None]:
        new = fingerprint(target.obj, self.s.profiles)
        if kind != "deploy" or not self.s.deployed:
            return kind, new
        if self.s.unsettled_roles and self.s.applied is not None and new is not None:
            # Roles an upgrade left part-way must finish rolling, even back to where they were.
            return "upgrade", new
        return classify(self.s.applied, new), new

    def _rolling_roles(self, applied: Fingerprint, new: Fingerprint) -> list[str]:
        changed = set(changed_roles(applied, new))
        unsettled = {r for r in self.s.unsettled_roles if r in new.role_hashes and r in applied.role_hashes}
        return [r for r in new.role_hashes if r in changed | unsettled]

    async def _operate(self, pending: str, failure: PendingFailover | None = None) -> None:
        s = self.s
        target = s.latest
        assert target is not None
        if pending != "failover" and target.generation > s.settled_generation:
            # A new spec starts the restart count afresh (and lifts a maxRestarts stop).
            s.restarts, s.restarts_exhausted = [], False
        # For a profile change (the generation settled already) the operation is of a generation that
        # had one already: its id needs the counter too.
        for_profiles = s.profiles_pending and target.generation <= s.settled_generation
        s.profiles_pending = False
        # The RollingUpdate profiles `new` is computed with: what the operation's steps build, even if a
        # profile changes meanwhile (that change is the next operation). A first deploy builds them as
        # they are.
        classified_with = dict(s.profiles)
        built_with = classified_with if s.deployed else None
        kind, new = self._classify(pending, target)
        s.operations += 1
        once = kind in ("deploy", "upgrade") and not for_profiles
        suffix = target.generation if once else f"{target.generation}-{s.operations}"
        op = OperationRecord(
            workflow_id=s.key.operation_id(kind, suffix), kind=kind, generation=target.generation
        )
        s.current = op
        timeouts = await self._settings()
        if kind == "repair":
            s.drifted.clear()
        if kind == "migrate":
            s.naming = s.naming_seen  # tried once; a failure is reported, and any later apply moves them too
        upgrade: UpgradeInput | None = None
        if kind == "upgrade":
            assert s.applied is not None and new is not None
            replicas = upgrade_replicas(s.applied, new)
            upgrade = UpgradeInput(
                key=s.key,
                event=target,
                workflow_id=workflow.info().workflow_id,
                timeouts=timeouts,
                profiles=built_with,
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
            # Known as in flight from now: a control arriving while the child starts must not be
            # refused as if no upgrade ran (its start is awaited below).
            self._child_kind = "upgrade"
            handle: ChildWorkflowHandle[Any, DeployResult] = await workflow.start_child_workflow(
                UpgradeWorkflow.run,
                upgrade,
                id=op.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                search_attributes=operation_attributes(s.key, target.uid, upgrade.mode.capitalize(), None),
                static_summary=f"{upgrade.mode} to generation {target.generation}: "
                + ", ".join(upgrade.roles),
            )
        else:
            self._set_phase({"scale": "Scaling", "failover": "Recovering"}.get(kind, "Deploying"))
            self._child_kind = kind
            deploy = await workflow.start_child_workflow(
                DeployWorkflow.run,
                DeployInput(
                    key=s.key,
                    event=target,
                    workflow_id=workflow.info().workflow_id,
                    timeouts=timeouts,
                    profiles=built_with,
                    reason=_DEPLOY_REASONS[kind],  # type: ignore[arg-type]
                    deployed_before=s.deployed,
                    failure=failure_text(failure),
                    failed=failure.failure if failure is not None else None,
                ),
                id=op.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                # A scale or a repair keeps the current revision; a deploy upserts the one it records.
                search_attributes=operation_attributes(
                    s.key,
                    target.uid,
                    kind.capitalize(),
                    s.current_revision.revision if s.current_revision and kind != "deploy" else None,
                ),
                static_summary=f"{kind} generation {target.generation}",
            )
            handle = deploy
        self._child = handle
        if upgrade is not None and self.s.paused != upgrade.paused:
            # Paused or resumed while the child was starting: it has to hear of it.
            await handle.signal(UpgradeWorkflow.pause if self.s.paused else UpgradeWorkflow.resume)
            self.s.paused_reported = self.s.paused
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
                new = self._built_with(result, target, new, classified_with)
                self._settle(result, new, upgrade, target.naming)
        self.s.current = None
        self.s.recent = [*self.s.recent, op][-KEEP_RECENT:]

    def _built_with(
        self,
        result: DeployResult,
        target: SpecEvent,
        new: Fingerprint | None,
        classified_with: dict[str, str],
    ) -> Fingerprint | None:
        """The fingerprint of what the operation built: with the RollingUpdate profiles its workloads were
        built with (`new` was computed with `classified_with`, which a first deploy may not have known).
        A profile signalled during the operation stays the newer: the next operation rolls it."""
        s = self.s
        built = result.profiles
        # Results from before profiles say None: such a history never takes the patched branch.
        if built is None or (built == classified_with and not s.profiles_pending):
            return new
        if not workflow.patched(PROFILES_PATCH):
            return new
        signalled = {n: v for n, v in s.profiles.items() if classified_with.get(n) != v}
        dropped = {n for n in classified_with if n not in s.profiles}  # turned NoUpdate meanwhile
        s.profiles = {**{n: v for n, v in built.items() if n not in dropped}, **signalled}
        if result.outcome == "ready" and s.profiles == built:
            # What was signalled meanwhile is what it built (a profile applied with its group): done.
            s.profiles_pending = False
        return fingerprint(target.obj, built) if new is not None else None

    def _leave_unsettled(self, upgrade: UpgradeInput | None) -> None:
        """An upgrade that did not finish may have left its roles part-way: the next change rolls them."""
        if upgrade is not None:
            self.s.unsettled_roles = sorted({*self.s.unsettled_roles, *upgrade.roles})

    def _settle(
        self, result: DeployResult, new: Fingerprint | None, upgrade: UpgradeInput | None, naming: int
    ) -> None:
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
            if upgrade is None:
                # Every role was applied by this worker's code: the naming its operation's event announced.
                s.naming = max(s.naming, naming)
            if new is not None:
                # After an upgrade that a scale follows, the replicas rolled at: the scale is still to do.
                replicas = upgrade.replicas if upgrade is not None else new.replicas
                s.applied = new.model_copy(update={"replicas": replicas})
            if result.revision_name:
                s.current_revision = RevisionRecord(name=result.revision_name, revision=result.revision)
                s.revisions = result.history or s.revisions
        revision = [RBG_REVISION.value_set(result.revision)] if result.revision else []
        self._set_phase(result.phase, *revision)
        if s.paused:
            s.paused_reported = False  # the operation's final status said "not paused": say it again

    def _superseded(self, generation: int) -> bool:
        latest = self.s.latest
        return latest is not None and latest.generation > generation

    async def _rewrite(self, req: RolloutRequest) -> None:
        s = self.s
        record = next((r for r in s.revisions if r.revision == req.to_revision), None)
        try:
            if record is None:
                raise ApplicationError(f"revision {req.to_revision} is no longer kept")
            event: SpecEvent = await run_short(
                act.rewrite_spec,
                SpecRewrite(key=s.key, uid=s.uid, revision=record.name),
                await self._settings(),
                f"{req.mode}: rewrite spec to revision {req.to_revision}",
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
            StatusUpdate(key=s.key, uid=s.uid),
            EventRecord(
                key=s.key,
                uid=s.uid,
                reason="RollbackRequested" if req.mode == "rollback" else "AbortRequested",
                message=req.message,
            ),
        )

    async def _report_paused(self) -> None:
        """Pause or resume with no rollout running: only the status and an Event change."""
        s = self.s
        paused = s.paused
        await self._settings()  # the status write below is for this worker's cluster only
        s.paused_reported = paused
        if paused and s.phase != "Paused":
            s.phase_before_pause = s.phase
        # On resume, back to the phase the pause replaced; a phase written since (Failed, Ready) stays.
        restored = (s.phase_before_pause or "Ready") if s.phase == "Paused" else s.phase
        phase = "Paused" if paused else restored
        self._set_phase(phase)
        await self._post(
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

    async def _post(self, update: StatusUpdate, event: EventRecord) -> None:
        await run_short(
            act.report, update.model_copy(update={"event": event}), self._timeouts, f"event {event.reason}"
        )

    async def _settings(self) -> Timeouts:
        """The worker's settings now: a changed deadline reaches this group at its next operation."""
        self._timeouts = await workflow.execute_local_activity(
            act.settings, start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY, summary="settings"
        )
        mine, theirs = self._timeouts.cluster, self.s.key.cluster
        if mine and theirs and mine != theirs:
            # Task queues are per cluster, so only a misconfigured worker gets here: acting would write to
            # the wrong cluster's objects of the same name.
            raise ApplicationError(
                f"RoleBasedGroup {self.s.key.namespace}/{self.s.key.name} belongs to cluster {theirs!r} "
                f"but this worker acts on cluster {mine!r}: a worker polls a task queue of another cluster "
                "(check --cluster-id and --task-queue of the worker and the watcher)",
                type="WrongCluster",
                non_retryable=True,
            )
        return self._timeouts
