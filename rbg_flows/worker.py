"""The worker's composition root: the workflows, and the activities bound to one Kubernetes client
and one shared watch cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from rbg_flows.activities.adapters import AdapterActivities
from rbg_flows.activities.apply import ApplyActivities
from rbg_flows.activities.deploy_role import DeployRoleActivities
from rbg_flows.activities.failover import FailoverActivities
from rbg_flows.activities.group_set import GroupSetActivities
from rbg_flows.activities.placement import PlacementActivities
from rbg_flows.activities.prepare import PrepareActivities
from rbg_flows.activities.revisions import RevisionActivities
from rbg_flows.activities.rollout import RolloutActivities
from rbg_flows.activities.scaling import ScalingActivities
from rbg_flows.activities.settings import SettingsActivities
from rbg_flows.activities.status import StatusActivities
from rbg_flows.activities.wait import WaitActivities
from rbg_flows.incluster import default_namespace
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import KubeClient
from rbg_flows.messages import Timeouts
from rbg_flows.workflows.deploy import DeployWorkflow
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow
from rbg_flows.workflows.group_set import RoleBasedGroupSetWorkflow
from rbg_flows.workflows.upgrade import UpgradeWorkflow

WORKFLOWS = (RoleBasedGroupWorkflow, DeployWorkflow, UpgradeWorkflow, RoleBasedGroupSetWorkflow)


def activities(
    kube: KubeClient, cache: WorkloadCache, timeouts: Timeouts, namespace: str | None = None
) -> Sequence[Callable[..., Any]]:
    """Every activity implementation, one per stub in `activities.interface`; `namespace` is where the
    worker keeps its own objects (the placement ledger), by default its pod's namespace."""
    prepare = PrepareActivities(kube, cache)
    revisions = RevisionActivities(kube, cache)
    role = DeployRoleActivities(ApplyActivities(kube, cache), WaitActivities(kube, cache))
    status = StatusActivities(kube, cache)
    rollout = RolloutActivities(kube, cache)
    placement = PlacementActivities(kube, cache, namespace or default_namespace())
    return [
        SettingsActivities(timeouts).settings,
        prepare.prepare,
        revisions.record_revision,
        placement.place,
        role.deploy_role,
        ScalingActivities(kube, cache).read_replicas,
        AdapterActivities(kube).sync_adapters,
        *_failover(kube),
        status.report,
        rollout.set_partition,
        rollout.step_role,
        rollout.wait_step,
        rollout.prune_roles,
        rollout.rewrite_spec,
        *_group_sets(kube, cache),
    ]


def _group_sets(kube: KubeClient, cache: WorkloadCache) -> tuple[Callable[..., Any], ...]:
    sets = GroupSetActivities(kube, cache)
    return (sets.sync_set, sets.update_set_child, sets.wait_set_child, sets.report_set)


def _failover(kube: KubeClient) -> tuple[Callable[..., Any], ...]:
    failover = FailoverActivities(kube)
    return (failover.role_pods, failover.delete_pods)


def sandbox_runner() -> WorkflowRunner:
    """The workflow runner: the SDK's sandbox, which still refuses non-deterministic calls in workflow
    code, with every module passed through instead of re-imported for each workflow run. Measured by
    `bench/sandbox.py` (100 groups through the entity and Deploy): 0.82 x the worker CPU of the default
    sandbox; no sandbox at all was 0.69 x but would let a stray `time.time()` or `random` into a
    workflow unnoticed. Passing modules through is safe because workflow modules keep no mutable
    module-level state (their constants only)."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())


def build_worker(
    client: Client,
    kube: KubeClient,
    cache: WorkloadCache,
    task_queue: str,
    timeouts: Timeouts | None = None,
    **kw: Any,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=list(activities(kube, cache, timeouts or Timeouts())),
        workflow_runner=sandbox_runner(),
        # Waits are cheap coroutines on a shared watch cache, so thousands may run at once.
        max_concurrent_activities=kw.pop("max_concurrent_activities", 2000),
        **kw,
    )
